//! Alerts: hands the failures worth reporting to Prometheus Alertmanager,
//! which groups the alerts of many hosts into one notification. The public
//! [`Alertmanager`] settings, checked at build into a [`Poster`]; at each
//! flush its [`post`](Poster::post) posts the firing alerts and the resolved ones
//! ([`payload`] builds them, [`client`] sends them) and keeps in the state
//! which ones Alertmanager accepted as firing.

pub(crate) mod client;
pub(crate) mod payload;

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::time::{Duration, Instant};

use time::OffsetDateTime;

use crate::capture::record::Record;
use crate::error::{Error, ErrorKind};
use crate::flush::destination::{Alerts, Posting};
use crate::policy::Policy;
use crate::redact::Redactor;
use crate::store::history::STRIP_RUNS;
use crate::store::state::{AlertPost, FiringAlert, State};

pub(crate) const PATH: &str = "/api/v2/alerts";
/// Firing, or resolved but not yet accepted: beyond it the oldest resolutions go.
pub(crate) const MAX_ALERTS: usize = 1000;
use crate::settings::{DAY, MAX_RESOLVE_WINDOW};

const MAX_ANSWER: usize = 2 * crate::redact::MAX_QUOTED;

/// The user's may not replace them.
const OWN_LABELS: [&str; 4] = ["alertname", "failure", "severity", "instance"];

/// Where the failures worth reporting also go: one or more Prometheus
/// Alertmanagers (`POST /api/v2/alerts`), given to
/// [`Builder::alerts`](crate::Builder::alerts).
///
/// At each flush, every failure (fingerprint, see
/// [`Builder::fingerprint_fields`](crate::Builder::fingerprint_fields)) that
/// the policy's rules would report becomes one alert, re-posted at every
/// flush that ends a run while it lasts, and by the background thread at
/// least every third of its [`resolve_window`](Alertmanager::resolve_window)
/// in between (so a long run, or a service's
/// [`flush_every`](crate::Builder::flush_every) period, does not let it
/// expire); a run whose flush no longer sees it posts it as resolved. Each alert's labels are `alertname` (the app), `failure` (the
/// failure's label, such as `feed "Radio Café"`: the same on every host),
/// `severity` (`error` or `warning`), `instance` (the host, see
/// [`Builder::host`](crate::Builder::host)) and the labels given here. It
/// is posted to every URL; it counts as delivered when one accepted it.
///
/// Credentials are never shown by `Debug`, in an error or in the state file.
///
/// ```
/// use std::time::Duration;
/// use tracing_email::{Alertmanager, EmailLayer};
///
/// let alerts = Alertmanager::new(["https://am-0:9093", "https://am-1:9093"])
///     .label("team", "media")
///     .bearer_token("s3cr3t")
///     .timeout(Duration::from_secs(5));
/// assert!(!format!("{alerts:?}").contains("s3cr3t"));
/// let b = EmailLayer::builder("poca").alerts(alerts);
/// ```
#[cfg_attr(docsrs, doc(cfg(feature = "alertmanager")))]
#[derive(Clone)]
pub struct Alertmanager {
    pub(crate) urls: Vec<String>,
    pub(crate) labels: BTreeMap<String, String>,
    pub(crate) auth: Option<Auth>,
    pub(crate) root_certificate: Option<Vec<u8>>,
    pub(crate) timeout: Duration,
    pub(crate) resolve_window: Option<Duration>,
    /// From a config: errors then name its keys.
    pub(crate) origin: Option<crate::settings::Origin>,
}

#[derive(Clone)]
pub(crate) enum Auth {
    Basic(String, String),
    Bearer(String),
}

impl fmt::Debug for Alertmanager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let auth = match &self.auth {
            None => "(none)".to_owned(),
            Some(Auth::Basic(user, _)) => format!("basic {user:?}:***"),
            Some(Auth::Bearer(_)) => "bearer ***".to_owned(),
        };
        let urls: Vec<String> = self.urls.iter().map(|u| without_userinfo(u)).collect();
        f.debug_struct("Alertmanager")
            .field("urls", &urls)
            .field("labels", &self.labels)
            .field("auth", &auth)
            .field("root_certificate", &self.root_certificate.is_some())
            .field("timeout", &self.timeout)
            .field("resolve_window", &self.resolve_window)
            .finish()
    }
}

impl Alertmanager {
    /// Posts to these Alertmanagers (base URLs such as
    /// `http://am-0:9093`, `https://alerts.example.com/am`): every one of a
    /// cluster, as Prometheus is given them. Checked by
    /// [`build`](crate::Builder::build).
    ///
    /// ```
    /// let am = tracing_email::Alertmanager::new(["http://127.0.0.1:9093"]);
    /// ```
    pub fn new<I, S>(urls: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Alertmanager {
            urls: urls.into_iter().map(Into::into).collect(),
            labels: BTreeMap::new(),
            auth: None,
            root_certificate: None,
            timeout: Duration::from_secs(10),
            resolve_window: None,
            origin: None,
        }
    }

    /// Adds another Alertmanager.
    ///
    /// ```
    /// let am = tracing_email::Alertmanager::new(["http://am-0:9093"]).url("http://am-1:9093");
    /// ```
    pub fn url(mut self, url: impl Into<String>) -> Self {
        self.urls.push(url.into());
        self
    }

    /// Adds a label to every alert, e.g. `("team", "media")` for routing. A
    /// name is letters, digits and `_`, not starting with a digit, and not
    /// one the crate sets (`alertname`, `failure`, `severity`, `instance`).
    ///
    /// ```
    /// let am = tracing_email::Alertmanager::new(["http://am:9093"]).label("env", "prod");
    /// ```
    pub fn label(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.labels.insert(name.into(), value.into());
        self
    }

    /// Sends HTTP basic authentication, over `https`, or `http` on
    /// loopback (127.0.0.0/8, `::1`, `localhost`): `build()` refuses it
    /// over `http` to another host. The password is never shown.
    ///
    /// ```
    /// let am = tracing_email::Alertmanager::new(["https://am.example.com"])
    ///     .basic_auth("poca", "s3cr3t");
    /// ```
    pub fn basic_auth(mut self, user: impl Into<String>, password: impl Into<String>) -> Self {
        self.auth = Some(Auth::Basic(user.into(), password.into()));
        self
    }

    /// Sends `Authorization: Bearer <token>`, over `https` or `http` on
    /// loopback, as [`basic_auth`](Alertmanager::basic_auth). The token is
    /// never shown.
    ///
    /// ```
    /// let am = tracing_email::Alertmanager::new(["https://am.example.com"]).bearer_token("t0k3n");
    /// ```
    pub fn bearer_token(mut self, token: impl Into<String>) -> Self {
        self.auth = Some(Auth::Bearer(token.into()));
        self
    }

    /// Trusts this root certificate (PEM) instead of the bundled webpki
    /// roots, for an Alertmanager behind a private CA.
    ///
    /// ```no_run
    /// let pem = std::fs::read("ca.pem")?;
    /// let am = tracing_email::Alertmanager::new(["https://am.internal:9093"]).root_certificate(pem);
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn root_certificate(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificate = Some(pem.into());
        self
    }

    /// The longest one post may take, 10 seconds by default; within the
    /// flush's [`send_deadline`](crate::Builder::send_deadline) in any case.
    /// At most a day.
    ///
    /// ```
    /// let am = tracing_email::Alertmanager::new(["http://am:9093"])
    ///     .timeout(std::time::Duration::from_secs(3));
    /// ```
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }

    /// How long a firing alert lasts unless posted again (its `endsAt` is
    /// now plus this): past it, Alertmanager counts the failure as over even
    /// if this program never runs again. By default three times the median
    /// time between the starts of the app's last 16 runs (kept in the state
    /// file; until two are known, the time between the runs of failures
    /// seen in several runs in a row), at least 5 minutes and at most a
    /// week: an hourly job's alerts last 3 hours. At most 30 days.
    ///
    /// ```
    /// let am = tracing_email::Alertmanager::new(["http://am:9093"])
    ///     .resolve_window(std::time::Duration::from_secs(2 * 3600));
    /// ```
    pub fn resolve_window(mut self, window: Duration) -> Self {
        self.resolve_window = Some(window);
        self
    }

    /// URLs (https or loopback when credentials are set), label names, the certificate, durations.
    pub(crate) fn check(self, app: &str, host: String) -> Result<Poster, Error> {
        let urls = "alertmanager_urls";
        if self.urls.is_empty() {
            let why = "no Alertmanager URL; give one or more such as http://am-0:9093";
            return Err(self.bad(urls, why));
        }
        let endpoints = self
            .urls
            .iter()
            .map(|raw| self.endpoint(raw).map_err(|m| self.bad(urls, m)))
            .collect::<Result<_, _>>()?;
        let labels = self.checked_labels()?;
        self.check_durations()?;
        let (authorization, redactor) = self.authorization()?;
        Ok(Poster {
            identity: payload::Identity {
                app: app.to_owned(),
                instance: host,
                labels,
            },
            endpoints,
            agent: self.agent()?,
            authorization,
            redactor,
            timeout: self.timeout,
            resolve_window: self.resolve_window,
        })
    }

    fn bad(&self, key: &str, message: impl fmt::Display) -> Error {
        let lead = match &self.origin {
            Some(o) => o.name(key),
            None => "alerts".to_owned(),
        };
        Error::new(ErrorKind::Config, format!("{lead}: {message}"))
    }

    fn checked_labels(&self) -> Result<BTreeMap<String, String>, Error> {
        for name in self.labels.keys() {
            let valid = name
                .chars()
                .enumerate()
                .all(|(i, c)| c == '_' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
            let (what, why) = match () {
                _ if name.is_empty() || !valid || name.starts_with("__") => (
                    "label name",
                    "is not valid; use letters, digits and _, not starting with a digit or __",
                ),
                _ if OWN_LABELS.contains(&name.as_str()) => (
                    "label",
                    "is set by tracing-email (alertname is the app, failure the failure, \
                     severity error or warning, instance the host; see Builder::host); choose \
                     another name",
                ),
                _ => continue,
            };
            return Err(self.bad("alertmanager_labels", format!("the {what} {name:?} {why}")));
        }
        Ok(self.labels.clone())
    }

    fn check_durations(&self) -> Result<(), Error> {
        for (key, d, max) in [
            ("alertmanager_timeout", Some(self.timeout), DAY),
            ("resolve_window", self.resolve_window, MAX_RESOLVE_WINDOW),
        ] {
            let Some(d) = d else { continue };
            let short = key.trim_start_matches("alertmanager_");
            if d.is_zero() {
                return Err(self.bad(key, format!("{short} must be longer than zero")));
            }
            let name = match &self.origin {
                Some(o) => o.name(key),
                None => format!("alerts {short}"),
            };
            crate::settings::at_most(&name, d, max).map_err(Error::config)?;
        }
        Ok(())
    }

    /// With the redactor that hides them (and their base64 form) in what a server says.
    fn authorization(&self) -> Result<(Option<String>, Redactor), Error> {
        Ok(match &self.auth {
            None => (None, Redactor::new()),
            // Base64 holds no line break; a token may.
            Some(Auth::Basic(user, password)) => {
                let encoded = crate::redact::base64(format!("{user}:{password}").as_bytes());
                let redactor = Redactor::new().login(user, password);
                (Some(format!("Basic {encoded}")), redactor)
            }
            Some(Auth::Bearer(token)) if token.contains(['\r', '\n']) => {
                let why = "the bearer token holds a line break";
                return Err(self.bad("alertmanager_token_env", why));
            }
            Some(Auth::Bearer(token)) => (
                Some(format!("Bearer {token}")),
                Redactor::new().secret(token),
            ),
        })
    }

    /// No redirect, statuses as answers, the root certificate if given as the only one trusted.
    fn agent(&self) -> Result<ureq::Agent, Error> {
        let mut config = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .max_redirects(0)
            .user_agent(concat!("tracing-email/", env!("CARGO_PKG_VERSION")));
        if let Some(pem) = &self.root_certificate {
            let certs = self.root_certs(pem)?;
            config = config.tls_config(
                ureq::tls::TlsConfig::builder()
                    .root_certs(ureq::tls::RootCerts::new_with_certs(&certs))
                    .build(),
            );
        }
        Ok(config.build().into())
    }

    fn root_certs(&self, pem: &[u8]) -> Result<Vec<ureq::tls::Certificate<'static>>, Error> {
        let key = "alertmanager_root_certificate";
        let mut certs = Vec::new();
        for item in ureq::tls::parse_pem(pem) {
            let bad = |e| self.bad(key, format!("the root certificate is not valid PEM: {e}"));
            if let ureq::tls::PemItem::Certificate(c) = item.map_err(bad)? {
                certs.push(c);
            }
        }
        if certs.is_empty() {
            let why = "the root certificate holds no certificate (expected PEM, -----BEGIN \
                       CERTIFICATE-----)";
            return Err(self.bad(key, why));
        }
        Ok(certs)
    }

    /// No credentials, query or fragment in it; credentials only over https or to loopback.
    fn endpoint(&self, raw: &str) -> Result<String, String> {
        let shown = shown(raw);
        let url = (url::Url::parse(raw.trim()).ok())
            .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
            .ok_or_else(|| {
                format!(
                    "{shown:?} is not an Alertmanager URL; give http://host:port or \
                     https://host:port"
                )
            })?;
        let secret = match &self.auth {
            Some(Auth::Basic(..)) => "password",
            Some(Auth::Bearer(_)) => "bearer token",
            None => "",
        };
        Err(if !url.username().is_empty() || url.password().is_some() {
            format!(
                "{shown:?} holds credentials; give them with basic_auth (the alertmanager_user \
                 and alertmanager_password_env keys) instead"
            )
        } else if url.query().is_some() || url.fragment().is_some() {
            format!("{shown:?}: a query or fragment is not part of an Alertmanager's base URL")
        } else if !secret.is_empty() && url.scheme() == "http" && !on_loopback(&url) {
            format!(
                "refusing to send the Alertmanager {secret} to {shown:?} over a connection that \
                 is not encrypted; use https:// (with alertmanager_root_certificate for a private \
                 CA), or http:// only to this host (127.0.0.1, ::1, localhost)"
            )
        } else {
            let base = url.as_str().trim_end_matches('/');
            let base = base.strip_suffix(PATH).unwrap_or(base);
            return Ok(format!("{base}{PATH}"));
        })
    }
}

/// 127.0.0.0/8, ::1 (or 127.x mapped into IPv6) or `localhost`.
fn on_loopback(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.to_canonical().is_loopback(),
        Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Without a user and password pasted before an `@`, cut so a long paste stays readable.
fn shown(url: &str) -> String {
    payload::failure_label(&without_userinfo(url))
}

fn without_userinfo(url: &str) -> String {
    match (url.find("//"), url.rfind('@')) {
        (Some(start), Some(at)) if at > start => {
            format!("{}***{}", &url[..start + 2], &url[at..])
        }
        _ => url.to_owned(),
    }
}

/// Endpoints end in `/api/v2/alerts`; the agent has the TLS roots, no redirects, no
/// status-as-error; the redactor hides the `Authorization` secret in anything quoted back.
#[derive(Clone)]
pub(crate) struct Poster {
    pub(crate) identity: payload::Identity,
    pub(crate) resolve_window: Option<Duration>,
    pub(crate) endpoints: Vec<String>,
    pub(crate) agent: ureq::Agent,
    pub(crate) authorization: Option<String>,
    pub(crate) redactor: Redactor,
    pub(crate) timeout: Duration,
}

// By hand: it holds the credentials.
impl fmt::Debug for Poster {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Poster")
            .field("identity", &self.identity)
            .field("endpoints", &self.endpoints)
            .finish_non_exhaustive()
    }
}

impl Alerts for Poster {
    fn window(&self, state: &State) -> Duration {
        self.resolve_window
            .unwrap_or_else(|| payload::default_window(&state.history))
    }

    /// `worth` and every already-firing failure run `run` saw again, as firing; the
    /// others firing, as resolved. When none accepts, the state keeps the firing ones
    /// and notes when the resolved ones ended, to post them again.
    fn post(
        &self,
        state: &mut State,
        worth: &BTreeSet<String>,
        (run, now, deadline): (u64, OffsetDateTime, Instant),
        policy: &Policy,
    ) -> Result<Posting, Error> {
        let (firing, over) = changes(state, worth, run, now);
        if firing.is_empty() && over.is_empty() {
            return Ok(Posting::default());
        }
        let window = self.window(state);
        let mut lines = newest_lines(&state.pending, &firing, policy);
        let mut alerts = Vec::new();
        for (key, ended) in &over {
            let Some(p) = state.alerts.get_mut(key) else {
                continue;
            };
            alerts.push(self.identity.resolved(p, *ended));
            // Until Alertmanager accepts the resolution; a failure whose
            // severity changed fires on under its new labels.
            if !firing.contains(key) {
                p.resolved = Some(*ended);
            }
        }
        let mut posted = BTreeMap::new();
        for key in &firing {
            let newest = lines.remove(key.as_str()).unwrap_or_default();
            if let Some((alert, kept)) = self.firing(state, key, &newest, now, window) {
                posted.insert(key.clone(), kept);
                alerts.push(alert);
            }
        }
        let body = serde_json::to_vec(&alerts).map_err(|e| {
            Error::with_source(ErrorKind::Alertmanager, "could not encode the alerts", e)
        })?;
        let answer = self.send(&body, deadline);
        self.settle(state, (answer, now), (firing, over), posted)
    }
}

impl Poster {
    fn firing(
        &self,
        state: &State,
        key: &str,
        lines: &[String],
        now: OffsetDateTime,
        window: Duration,
    ) -> Option<(payload::Alert, FiringAlert)> {
        let s = state.history.streaks.get(key)?;
        let since = state
            .alerts
            .get(key)
            .filter(|p| p.resolved.is_none())
            .map_or(s.since, |p| p.since.min(s.since));
        let recent = state
            .history
            .recent_runs(key, STRIP_RUNS)
            .unwrap_or_default();
        let alert = self.identity.firing(s, since, lines, &recent, now, window);
        let posted = FiringAlert {
            failure: payload::failure_label(&s.label),
            severity: payload::severity(s.level).to_owned(),
            since,
            runs: s.runs,
            resolved: None,
            labels: alert.labels.clone(),
            last_accepted: Some(now),
            last_post: None,
        };
        Some((alert, posted))
    }

    /// The error's text passes the redactor once more. Unaccepted, the state stays as
    /// [`post`](Alerts::post) left it.
    fn settle(
        &self,
        state: &mut State,
        (answer, now): (Result<usize, Error>, OffsetDateTime),
        (firing, over): (BTreeSet<String>, Vec<(String, OffsetDateTime)>),
        posted: BTreeMap<String, FiringAlert>,
    ) -> Result<Posting, Error> {
        let redactor = &self.redactor;
        let redact = |e: &Error| redactor.quote(e.to_string().as_bytes(), MAX_ANSWER, false);
        state.alert_post = Some(AlertPost {
            at: now,
            firing: firing.len(),
            resolved: over.len(),
            accepted: *answer.as_ref().unwrap_or(&0),
            of: self.endpoints.len(),
            error: answer.as_ref().err().map(redact),
        });
        if let Err(error) = answer {
            bound(&mut state.alerts);
            return Err(error);
        }
        for (key, _) in &over {
            state.alerts.remove(key);
        }
        state.alerts.extend(posted);
        Ok(Posting {
            firing,
            resolved: over.len(),
        })
    }
}

/// Firing: `worth` and those firing that run `run` saw again (at most
/// [`MAX_ALERTS`]); over: firing ones not seen, and any whose severity changed.
fn changes(
    state: &State,
    worth: &BTreeSet<String>,
    run: u64,
    now: OffsetDateTime,
) -> (BTreeSet<String>, Vec<(String, OffsetDateTime)>) {
    let streaks = &state.history.streaks;
    let seen = |key: &str| streaks.get(key).filter(|s| s.last_run == run);
    let known = worth.iter().filter(|k| streaks.contains_key(*k));
    let again = state
        .alerts
        .keys()
        .filter(|k| seen(k).is_some() && !worth.contains(*k));
    let firing: BTreeSet<String> = known.chain(again).take(MAX_ALERTS).cloned().collect();
    let over = state.alerts.iter().filter(|(key, posted)| {
        let changed = seen(key).is_some_and(|s| payload::severity(s.level) != posted.severity);
        !firing.contains(*key) || changed
    });
    let over = over.map(|(key, posted)| (key.clone(), posted.resolved.unwrap_or(now)));
    let over = over.collect();
    (firing, over)
}

fn newest_lines<'f>(
    pending: &[Record],
    firing: &'f BTreeSet<String>,
    policy: &Policy,
) -> BTreeMap<&'f str, Vec<String>> {
    let mut lines: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for r in pending.iter().rev() {
        if let Some(key) = policy
            .failure_of(r)
            .and_then(|fp| firing.get(fp.key.as_str()))
        {
            let of = lines.entry(key.as_str()).or_default();
            if of.len() < payload::MAX_LINES {
                of.insert(0, r.to_line(time::UtcOffset::UTC));
            }
        }
    }
    lines
}

/// Resolutions that ended longest ago go first, then firing ones seen fewest runs.
fn bound(alerts: &mut BTreeMap<String, FiringAlert>) {
    let mut by_age: Vec<_> = alerts
        .iter()
        .map(|(key, p)| ((p.resolved.is_none(), p.resolved, p.runs), key.clone()))
        .collect();
    by_age.sort();
    for (_, key) in by_age
        .into_iter()
        .take(alerts.len().saturating_sub(MAX_ALERTS))
    {
        alerts.remove(&key);
    }
}

#[cfg(test)]
mod tests;
