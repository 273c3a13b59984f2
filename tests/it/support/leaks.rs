//! Whether a secret shows anywhere: in each form it travels in (as it is,
//! percent-encoded, base64 alone and inside the AUTH PLAIN, XOAUTH2 and
//! HTTP basic blobs), or by the first 8 characters of any of them (so no
//! beginning of 8 or more characters shows either).

use std::path::Path;

/// A login's secret in every form it may travel in.
pub struct Secret {
    forms: Vec<String>,
}

impl Secret {
    /// The forms of `secret` logging in as `user`.
    pub fn login(user: &str, secret: &str) -> Secret {
        let forms = vec![
            secret.to_owned(),
            percent(secret),
            base64(secret.as_bytes()),
            base64(format!("\0{user}\0{secret}").as_bytes()),
            base64(format!("user={user}\x01auth=Bearer {secret}\x01\x01").as_bytes()),
            base64(format!("{user}:{secret}").as_bytes()),
        ];
        Secret { forms }
    }

    /// Form `i` (0: as it is, 1: percent-encoded, 2: base64, 3: AUTH
    /// PLAIN, 4: XOAUTH2, 5: HTTP basic).
    pub fn form(&self, i: usize) -> &str {
        &self.forms[i]
    }

    /// Panics, naming `what`, if `text` holds a form or the first 8
    /// characters of one.
    #[track_caller]
    pub fn assert_absent(&self, what: &str, text: &str) {
        for form in &self.forms {
            let start: String = form.chars().take(8).collect();
            assert!(
                !text.contains(&start),
                "{what} holds {start:?}, the start of {form:?}:\n{text}"
            );
        }
    }

    /// The same for every file in `dir` (a state file, its journal, its
    /// lock and whatever lies beside them).
    #[track_caller]
    pub fn assert_absent_from_files(&self, dir: &Path) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                let text = String::from_utf8_lossy(&std::fs::read(&path).unwrap()).into_owned();
                self.assert_absent(&path.display().to_string(), &text);
            }
        }
    }
}

/// Every byte but `A-Z a-z 0-9 - . _ ~` as `%XX`.
fn percent(text: &str) -> String {
    text.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Standard base64 with padding.
pub fn base64(bytes: &[u8]) -> String {
    const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            out.push(if i <= chunk.len() {
                A[(n >> (18 - 6 * i) & 63) as usize] as char
            } else {
                '='
            });
        }
    }
    out
}
