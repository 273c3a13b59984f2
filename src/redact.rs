//! The one redactor: every text that comes from outside the program (an
//! SMTP or HTTP server's reply, a password helper's or sendmail's standard
//! error) passes it before it is shown or stored. It hides every secret the
//! send knows in each form it may travel in (plain, percent-encoded,
//! JSON-escaped, base64 alone and inside the AUTH PLAIN, XOAUTH2 and HTTP
//! basic blobs), puts the text on one line with control characters
//! escaped, then bounds it, cutting away a secret's beginning that the cut
//! would leave at the end. It also hides the password of a URL
//! (`smtp_url`, `alertmanager_urls`) where a config's `Debug` shows it.

// SMTP and Alertmanager use all of it; sendmail only escapes and bounds.
#![cfg_attr(not(all(feature = "smtp", feature = "alertmanager")), allow(dead_code))]

use crate::error::error_chain;

/// What a hidden secret is shown as.
pub(crate) const HIDDEN: &str = "***";

/// Most bytes of a server's reply or a helper's standard error shown or
/// stored, the `…` of a cut not counted.
pub(crate) const MAX_QUOTED: usize = 512;

/// The secrets one send knows, each in every form it may travel in.
#[derive(Clone, Default)]
pub(crate) struct Redactor {
    /// Each form as it may appear in a raw text, longest first.
    forms: Vec<String>,
}

impl Redactor {
    /// A redactor that knows no secret yet: it still escapes and bounds.
    pub(crate) fn new() -> Self {
        Redactor::default()
    }

    /// Hides `secret` as it is, percent-encoded (upper- and lower-case
    /// hex, `+` for a space as in a form), JSON-escaped, and in base64 (as
    /// AUTH LOGIN sends it). An empty secret hides nothing.
    pub(crate) fn secret(mut self, secret: &str) -> Self {
        if secret.is_empty() {
            return self;
        }
        let json = serde_json::to_string(secret).unwrap_or_default();
        let forms = [
            secret.to_owned(),
            percent(secret, false, false),
            percent(secret, true, false),
            percent(secret, false, true),
            json.get(1..json.len().saturating_sub(1))
                .unwrap_or_default()
                .to_owned(),
            base64(secret.as_bytes()),
        ];
        for form in forms {
            self.add(form);
        }
        self
    }

    /// Hides a login's `secret` (see [`secret`](Redactor::secret)) and the
    /// blobs that carry it with `user`: AUTH PLAIN (`\0user\0secret`),
    /// XOAUTH2 (`user=…\x01auth=Bearer secret\x01\x01`) and HTTP basic
    /// (`user:secret`), in base64.
    pub(crate) fn login(self, user: &str, secret: &str) -> Self {
        if secret.is_empty() {
            return self;
        }
        let mut redactor = self.secret(secret);
        for blob in [
            format!("\0{user}\0{secret}"),
            format!("user={user}\x01auth=Bearer {secret}\x01\x01"),
            format!("{user}:{secret}"),
        ] {
            redactor.add(base64(blob.as_bytes()));
        }
        redactor
    }

    fn add(&mut self, form: String) {
        // Base64 padding may be dropped by whoever echoes it.
        for form in [form.as_str(), form.trim_end_matches('=')] {
            if !form.is_empty() && !self.forms.iter().any(|f| f == form) {
                self.forms.push(form.to_owned());
            }
        }
        self.forms.sort_by_key(|form| std::cmp::Reverse(form.len()));
    }

    /// How many bytes to read of a text of which `limit` are shown: enough
    /// that a secret beginning within the shown part is read whole (and so
    /// hidden whole).
    pub(crate) fn read_limit(&self, limit: usize) -> usize {
        limit + self.forms.first().map_or(0, String::len)
    }

    /// `raw` as one line that holds no secret this redactor knows: each
    /// form replaced by `***`, runs of white space as one space, other
    /// control characters escaped (`\u{0}`), at most `limit` bytes. `more`
    /// says that `raw` is itself the start of a longer text. A cut text
    /// ends with `…`, and the beginning of a secret is never left before
    /// it.
    pub(crate) fn quote(&self, raw: &[u8], limit: usize, more: bool) -> String {
        let mut text = String::from_utf8_lossy(raw).into_owned();
        if more {
            // A character the read tore at the end (with any other bad
            // bytes there) is dropped, not shown as U+FFFD.
            text.truncate(text.trim_end_matches('\u{fffd}').len());
        }
        for form in &self.forms {
            text = text.replace(form.as_str(), HIDDEN);
        }
        let (kept, cut) = one_line(&text, limit);
        if !cut && !more {
            return kept;
        }
        // A form's beginning as it shows once put on one line.
        let forms = self.forms.iter().map(|form| one_line(form, usize::MAX).0);
        let dangling = forms.map(|form| dangling(&kept, &form)).max();
        let mut out = kept[..kept.len() - dangling.unwrap_or(0)]
            .trim_end()
            .to_owned();
        out.push('…');
        out
    }

    /// An error and its sources (see [`error_chain`]) as [`quote`](Redactor::quote)
    /// gives them, at most [`MAX_QUOTED`] bytes.
    pub(crate) fn quote_error(&self, error: &(dyn std::error::Error + 'static)) -> String {
        self.quote(error_chain(error).to_string().as_bytes(), MAX_QUOTED, false)
    }

    /// Whether `text` holds a secret this redactor knows.
    pub(crate) fn finds_secret_in(&self, text: &str) -> bool {
        self.forms.iter().any(|form| text.contains(form.as_str()))
    }
}

/// How many bytes at the end of `text` are the beginning of `form` (the
/// longest such beginning, shorter than `form`).
fn dangling(text: &str, form: &str) -> usize {
    form.char_indices()
        .map(|(i, _)| i)
        .filter(|&i| i > 0 && text.ends_with(&form[..i]))
        .max()
        .unwrap_or(0)
}

/// `text` trimmed, each run of white space as one space, other control
/// characters (and the marks that reorder text) escaped; at most `limit`
/// bytes, never half a character or an escape, and whether it was cut.
fn one_line(text: &str, limit: usize) -> (String, bool) {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out = String::with_capacity(text.len().min(limit));
    for c in words.join(" ").chars() {
        let end = out.len();
        let reorders = matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}');
        if c.is_control() || reorders {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
        if out.len() > limit {
            out.truncate(end);
            return (out, true);
        }
    }
    (out, false)
}

/// `text` percent-encoded: every byte but `A-Z a-z 0-9 - . _ ~`, in upper-
/// or `lower` case hex; a space as `+` when `form`.
fn percent(text: &str, lower: bool, form: bool) -> String {
    let escaped = text.bytes().map(|b| match b {
        b' ' if form => "+".to_owned(),
        b if b.is_ascii_alphanumeric() || b"-._~".contains(&b) => char::from(b).to_string(),
        b if lower => format!("%{b:02x}"),
        b => format!("%{b:02X}"),
    });
    escaped.collect()
}

/// Standard base64 with padding, as `Authorization: Basic` and SMTP AUTH
/// use it.
pub(crate) fn base64(bytes: &[u8]) -> String {
    base64::Engine::encode(&base64::engine::general_purpose::STANDARD, bytes)
}

/// The URL with its password, if any, shown as `***`, whatever it holds:
/// everything between `//` and the last `@` is the user information, and
/// when it holds `/`, `?` or `#` (a password pasted unencoded) all of it is
/// hidden; else the user name is kept and the password hidden. Without `@`,
/// a "port" that is not a number (`user:password` with the host left out) is
/// hidden too, with all that follows it.
pub(crate) fn redact_url(url: &str) -> String {
    let Some(start) = url.find("://").map(|i| i + 3) else {
        return "(not a valid URL, hidden)".to_owned();
    };
    let (scheme, rest) = url.split_at(start);
    if let Some(at) = rest.rfind('@') {
        let (userinfo, after) = rest.split_at(at);
        let shown = match (userinfo.contains(['/', '?', '#']), userinfo.find(':')) {
            (true, _) => "***".to_owned(),
            (false, Some(colon)) => format!("{}:***", &userinfo[..colon]),
            (false, None) => userinfo.to_owned(),
        };
        return format!("{scheme}{shown}{after}");
    }
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    match authority.rfind(':') {
        Some(colon)
            if !authority.ends_with(']')
                && !authority[colon + 1..].chars().all(|c| c.is_ascii_digit()) =>
        {
            format!("{scheme}{}:***", &authority[..colon])
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_as_rfc_4648() {
        for (plain, encoded) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
            ("Aladdin:open sesame", "QWxhZGRpbjpvcGVuIHNlc2FtZQ=="),
        ] {
            assert_eq!(base64(plain.as_bytes()), encoded);
        }
    }

    const USER: &str = "me@example.com";
    const SECRET: &str = "p@ss w/rd\"1";

    fn redactor() -> Redactor {
        Redactor::new().login(USER, SECRET)
    }

    /// Every form the secret may travel in.
    fn forms() -> Vec<String> {
        vec![
            SECRET.to_owned(),
            "p%40ss%20w%2Frd%221".to_owned(),
            "p%40ss%20w%2frd%221".to_owned(),
            "p%40ss+w%2Frd%221".to_owned(),
            r#"p@ss w/rd\"1"#.to_owned(),
            base64(SECRET.as_bytes()),
            base64(format!("\0{USER}\0{SECRET}").as_bytes()),
            base64(format!("user={USER}\x01auth=Bearer {SECRET}\x01\x01").as_bytes()),
            base64(format!("{USER}:{SECRET}").as_bytes()),
        ]
    }

    #[test]
    fn every_form_of_the_secret_is_hidden() {
        for form in forms() {
            let quoted = redactor().quote(format!("535 no: {form} !").as_bytes(), 512, false);
            assert_eq!(quoted, "535 no: *** !", "{form}");
        }
    }

    #[test]
    fn a_text_is_one_line_with_control_characters_escaped() {
        let r = Redactor::new();
        assert_eq!(r.quote(b" a\r\n\tb  c\n", 512, false), "a b c");
        assert_eq!(
            r.quote(b"nul\0 esc\x1b[31m", 512, false),
            "nul\\u{0} esc\\u{1b}[31m"
        );
        assert_eq!(r.quote("a\u{202e}b".as_bytes(), 512, false), "a\\u{202e}b");
        let zeros = r.quote(&[0; 2048], 512, true);
        assert!(zeros.len() <= 512 + '…'.len_utf8(), "{}", zeros.len());
        assert!(zeros.ends_with("\\u{0}…"), "{zeros}");
    }

    #[test]
    fn a_text_is_cut_after_redaction_and_no_beginning_of_a_secret_is_left() {
        let r = Redactor::new().login("poca", "TOPSECRETtokenABCDEFGH");
        // The token straddles the cut: hidden whole, as it was read whole.
        let mut reply = "x".repeat(500);
        reply.push_str(" Bearer TOPSECRETtokenABCDEFGH and more");
        let quoted = r.quote(reply.as_bytes(), 512, false);
        assert!(quoted.ends_with(" Bearer ***…"), "{quoted}");
        // The text read ends inside the token: its beginning is cut away,
        // whatever its length.
        let whole = "token is TOPSECRETtokenABCDEFGH";
        for n in 1..whole.len() - 9 {
            let quoted = r.quote(&whole.as_bytes()[..9 + n], 512, true);
            assert_eq!(quoted, "token is…", "{n}");
        }
        // The same for the basic blob, cut at the limit.
        let blob = base64(b"poca:TOPSECRETtokenABCDEFGH");
        for n in 8..blob.len() {
            let raw = format!("{}{}", "y".repeat(n), blob);
            let quoted = r.quote(raw.as_bytes(), 20, false);
            assert!(!quoted.contains(&blob[..8]), "{quoted}");
            assert!(quoted.len() <= 20 + 3, "{quoted}");
        }
    }

    #[test]
    fn a_cut_never_splits_a_character_or_an_escape() {
        let r = Redactor::new();
        assert_eq!(r.quote("ééé".as_bytes(), 3, false), "é…");
        assert_eq!(r.quote(b"ab\0", 5, false), "ab…");
        let path = format!("C:\\{}", "x".repeat(600));
        assert_eq!(
            r.quote(path.as_bytes(), 20, false).len(),
            20 + '…'.len_utf8()
        );
        // A character torn by the read is dropped, not shown as U+FFFD.
        assert_eq!(r.quote(&"aé".as_bytes()[..2], 512, true), "a…");
    }

    #[test]
    fn read_limit_covers_the_longest_form() {
        let r = redactor();
        let longest = forms().iter().map(String::len).max();
        assert_eq!(r.read_limit(512), 512 + longest.unwrap());
        assert_eq!(Redactor::new().read_limit(512), 512);
        assert!(r.finds_secret_in(&format!("x {}", forms()[6])));
        assert!(!r.finds_secret_in("nothing here"));
    }

    #[test]
    fn urls_are_shown_without_their_password() {
        assert_eq!(
            redact_url("smtps://me%40example.com:hunter2@smtp.example.com:465"),
            "smtps://me%40example.com:***@smtp.example.com:465"
        );
        assert_eq!(redact_url("smtp://h?tls=required"), "smtp://h?tls=required");
        assert_eq!(redact_url("smtps://u:hunter 2@"), "smtps://u:***@");
        assert_eq!(redact_url("p:a:ss@word"), "(not a valid URL, hidden)");
        // A password pasted with reserved characters: all of the user
        // information up to the last `@` is hidden.
        assert_eq!(redact_url("smtps://me@x.org/a:b@c"), "smtps://***@c");
        assert_eq!(
            redact_url("smtps://me:p#ss?w/rd@x:y%z@smtp.example.com:465?tls=none"),
            "smtps://***@smtp.example.com:465?tls=none"
        );
        assert_eq!(
            redact_url("smtps://me:ab@cd:ef@smtp.example.com"),
            "smtps://me:***@smtp.example.com"
        );
        // The host left out: `user:password` looks like `host:port`.
        assert_eq!(redact_url("smtps://me:hunter2"), "smtps://me:***");
        assert_eq!(redact_url("smtps://me:hunter2#x/y"), "smtps://me:***");
        assert_eq!(redact_url("smtps://h:465"), "smtps://h:465");
        assert_eq!(redact_url("smtp://[::1]?tls=none"), "smtp://[::1]?tls=none");
        assert_eq!(redact_url("smtp://[::1]:25"), "smtp://[::1]:25");
    }
}
