//! An [`EmailConfig`]'s ways in and out: read from environment variables
//! (each by the reader of its key in a file), and made into a [`Builder`],
//! with the transports its keys describe (SMTP and its logins, an outbox,
//! Alertmanager). The keys themselves are declared in `settings`.

use std::collections::HashMap;
use std::ffi::OsString;

use serde::de::{
    DeserializeSeed, Deserializer, Error as _, IntoDeserializer, MapAccess, Visitor, value,
};
use serde_json::{Value, json};

use crate::builder::Builder;
use crate::capture::layer::EmailLayer;
#[cfg_attr(not(feature = "smtp"), allow(unused_imports))]
use crate::error::{Error, ErrorKind};
use crate::guard::FlushGuard;
use crate::settings::{EmailConfig, Origin, Password};
use crate::transport::FileDrop;
#[cfg(feature = "smtp")]
use crate::transport::Smtp;

impl EmailConfig {
    /// Reads the settings from environment variables named `PREFIX_KEY`:
    /// each key of [`EmailConfig`] upper-cased, the policy's without `policy`
    /// (`POCA_APP`, `POCA_SMTP_URL`, `POCA_BATCH`, `POCA_CONSECUTIVE_RUNS`,
    /// …), each taking what its key takes, written as text: `true` or
    /// `false`, seconds such as `0.5`, `PREFIX_THRESHOLD` as `COUNT:LEVEL`
    /// (`5:warn`), `PREFIX_TO` and `PREFIX_FINGERPRINT_FIELDS` separated by
    /// commas, `PREFIX_CHECKPOINT_INTERVAL=false` for no checkpoints,
    /// `PREFIX_PASSWORD_COMMAND` and `PREFIX_OAUTH2_TOKEN_COMMAND` as the
    /// program then its arguments separated by white space (`pass show
    /// smtp`), or as a JSON list of strings when an argument holds a space
    /// (`["secret-tool", "lookup", "service", "my smtp"]`). Besides
    /// them, `PREFIX_SMTP_PASSWORD` holds the SMTP password itself.
    ///
    /// The prefix is given without its underscore (`"POCA"`; a trailing `_`
    /// is ignored). A variable set to the empty string counts as not set.
    /// Other variables that start with the prefix are ignored, so the
    /// program may keep its own settings under the same prefix; a misspelt
    /// name is therefore not noticed.
    ///
    /// The password in `PREFIX_SMTP_PASSWORD` is kept in the config but never
    /// shown by `Debug` or in an error.
    ///
    /// # Errors
    ///
    /// An error of kind [`ErrorKind::Config`] that names the variable: an
    /// empty prefix, `PREFIX_APP` not set, a value that does not parse
    /// (`POCA_BATCH: invalid type: string "ten", expected a whole number of
    /// at least 1`), or a value that is not valid UTF-8.
    ///
    /// ```no_run
    /// // POCA_APP=poca POCA_SMTP_URL=smtps://me%40example.com@smtp.example.com
    /// // POCA_SMTP_PASSWORD=… POCA_FROM=me@example.com POCA_TO=me@example.com
    /// // POCA_THRESHOLD=5:warn
    /// let config = tracing_email::EmailConfig::from_env("POCA")?;
    /// let (layer, guard) = tracing_email::EmailLayer::from_config(&config)?;
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn from_env(prefix: &str) -> Result<EmailConfig, Error> {
        let vars = std::env::vars_os()
            .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok())));
        EmailConfig::read_vars(prefix, vars)
    }

    /// Like [`from_env`](EmailConfig::from_env), over the variables given
    /// instead of the process's environment: for tests, or for settings
    /// read from a `.env` file. Later pairs win over earlier ones with the
    /// same name.
    ///
    /// # Errors
    ///
    /// As [`from_env`](EmailConfig::from_env).
    ///
    /// ```
    /// use std::time::Duration;
    /// use tracing::Level;
    /// use tracing_email::EmailConfig;
    ///
    /// let config = EmailConfig::from_vars("POCA", [
    ///     ("POCA_APP", "poca"),
    ///     ("POCA_OUTBOX", "target/outbox"),
    ///     ("POCA_TO", "me@example.com, ops@example.com"),
    ///     ("POCA_THRESHOLD", "5:warn"),
    ///     ("POCA_SEND_DEADLINE", "2.5"),
    ///     ("POCA_FEEDS", "the program's own setting, ignored here"),
    /// ])?;
    /// assert_eq!(config.policy.threshold, Some((5, Level::WARN)));
    /// assert_eq!(config.send_deadline, Duration::from_millis(2500));
    ///
    /// let err = EmailConfig::from_vars("POCA", [("POCA_APP", "poca"), ("POCA_BATCH", "ten")])
    ///     .unwrap_err();
    /// assert_eq!(
    ///     err.to_string(),
    ///     r#"POCA_BATCH: invalid type: string "ten", expected a whole number of at least 1"#
    /// );
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn from_vars<I, K, V>(prefix: &str, vars: I) -> Result<EmailConfig, Error>
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: Into<String>,
    {
        let vars = vars
            .into_iter()
            .map(|(name, value)| (name, Some(value.into())));
        EmailConfig::read_vars(prefix, vars)
    }

    /// `None`: not valid UTF-8, an error only in a variable that is read.
    fn read_vars<K: AsRef<str>>(
        prefix: &str,
        vars: impl Iterator<Item = (K, Option<String>)>,
    ) -> Result<EmailConfig, Error> {
        let prefix = prefix.strip_suffix('_').unwrap_or(prefix);
        if prefix.is_empty() {
            return Err(Error::config(
                "the prefix of the environment variables is empty; use one such as \"POCA\" \
                 for POCA_APP, POCA_TO, …",
            ));
        }
        let mut found = HashMap::new();
        for (name, value) in vars {
            let Some(var) = name.as_ref().strip_prefix(&format!("{prefix}_")) else {
                continue;
            };
            match value.as_deref() == Some("") {
                true => found.remove(var),
                false => found.insert(var.to_owned(), value),
            };
        }
        if !found.contains_key("APP") {
            return Err(Error::config(format!(
                "{prefix}_APP is not set; it names the program, such as {prefix}_APP=poca"
            )));
        }
        let vars = Vars {
            prefix,
            found: &found,
            keys: [].iter(),
            key: "",
        };
        let mut config =
            EmailConfig::deserialize(vars).map_err(|e| Error::config(e.to_string()))?;
        config.password = match found.remove("SMTP_PASSWORD") {
            Some(None) => {
                let message = format!("{prefix}_SMTP_PASSWORD: the value is not valid UTF-8");
                return Err(Error::config(message));
            }
            password => password.flatten().map(Password),
        };
        config.origin = Origin::Env(prefix.to_owned());
        Ok(config)
    }

    /// Sets the SMTP password itself (from a secret store, say), for a
    /// config whose `smtp_url` names the user but holds no password. Like
    /// the password in a URL, it is never shown by `Debug` or in an error.
    ///
    /// ```
    /// let mut config = tracing_email::EmailConfig::default();
    /// config.app = "poca".into();
    /// config.smtp_url = Some("smtps://me%40example.com@smtp.example.com".into());
    /// config.set_password("hunter2");
    /// assert!(!format!("{config:?}").contains("hunter2"));
    /// ```
    pub fn set_password(&mut self, password: impl Into<String>) {
        self.password = Some(Password(password.into()));
    }

    /// Names the table of the configuration file these settings were read
    /// from, so that the errors of [`EmailLayer::from_config`] and
    /// [`builder`](EmailConfig::builder) name each key as the file does:
    /// `email.smtp_url`, `email.policy.consecutive_runs`.
    ///
    /// Errors found while deserializing cannot (see [`EmailConfig`]): the
    /// format's own error says where in the file.
    ///
    /// ```
    /// use tracing_email::{EmailConfig, EmailLayer};
    ///
    /// #[derive(serde::Deserialize)]
    /// struct Job {
    ///     email: EmailConfig,
    /// }
    ///
    /// let job: Job = toml::from_str(r#"
    ///     [email]
    ///     app = "nightly"
    ///     smtp_url = "smtp://me:secret@smtp.example.com"
    ///     from = "nightly@example.com"
    ///     to = "me@example.com"
    /// "#).unwrap();
    /// let mut config = job.email;
    /// config.set_table("email");
    /// let err = EmailLayer::from_config(&config).unwrap_err().to_string();
    /// assert!(err.starts_with("email.smtp_url: refusing to send the SMTP password"));
    /// assert!(err.contains("set email.allow_insecure_auth = true"));
    /// ```
    pub fn set_table(&mut self, table: impl Into<String>) {
        self.origin = Origin::Table(table.into());
    }

    /// A [`Builder`] with every setting of this config applied, to change
    /// or add some in code before [`build`](Builder::build). Files are read
    /// here (the root certificate) and so is the `password_env` variable.
    ///
    /// Unlike [`EmailLayer::from_config`], it accepts a config without
    /// `from`, `to`, or either of `smtp_url` and `outbox`: set them on the
    /// builder (`build()` says so if they are still missing).
    ///
    /// # Errors
    ///
    /// An error of kind [`ErrorKind::Config`] or [`ErrorKind::Smtp`] that
    /// names the key (or the variable, for a config from
    /// [`from_env`](EmailConfig::from_env)): both `smtp_url` and `outbox`
    /// set, an SMTP setting without `smtp_url`, a bad URL, the
    /// `password_env` variable not set, the password given twice, an
    /// unreadable certificate file.
    /// The other settings (addresses, counts, durations) are checked by
    /// [`build`](Builder::build), which names their keys the same way.
    ///
    /// ```
    /// use tracing_email::{EmailConfig, FileDrop};
    ///
    /// let config: EmailConfig = toml::from_str(r#"
    ///     app = "poca"
    ///     from = "poca <me@example.com>"
    ///     to = "me@example.com"
    /// "#).unwrap();
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let outbox = dir.path().join("outbox");
    /// # let state = dir.path().join("state.json");
    /// let (layer, guard) = config
    ///     .builder()?
    ///     .transport(FileDrop::new(outbox))   // a transport chosen in code
    ///     .state_file(state)
    ///     .build()?;
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn builder(&self) -> Result<Builder, Error> {
        self.builder_with(&|name| std::env::var_os(name))
    }

    fn builder_with(&self, getenv: &dyn Fn(&str) -> Option<OsString>) -> Result<Builder, Error> {
        let b = EmailLayer::builder(self.app.clone());
        let mut b = match (&self.smtp_url, &self.outbox) {
            (Some(_), Some(_)) => {
                return Err(Error::config(format!(
                    "{} and {} are both set; keep one: {0} sends over SMTP, {1} writes .eml \
                     files into a folder",
                    self.name("smtp_url"),
                    self.name("outbox"),
                )));
            }
            #[cfg(feature = "smtp")]
            (Some(url), None) => b.transport(self.smtp(url, getenv)?),
            #[cfg(not(feature = "smtp"))]
            (Some(_), None) => {
                return Err(Error::config(format!(
                    "{}: this program was built without tracing-email's `smtp` feature; \
                     use `outbox`, or enable the feature",
                    self.name("smtp_url")
                )));
            }
            (None, outbox) => {
                let smtp_only = [
                    ("password_env", self.password_env.is_some()),
                    ("password_command", self.password_command.is_some()),
                    ("oauth2_token_command", self.oauth2_token_command.is_some()),
                    ("root_certificate", self.root_certificate.is_some()),
                    ("timeout", self.timeout.is_some()),
                    ("allow_insecure_auth", self.allow_insecure_auth),
                ];
                let given = (self.password_name(), self.password.is_some());
                let keys = smtp_only.map(|(key, set)| (self.name(key), set));
                self.needs("smtp_url", "an SMTP setting", [given].iter().chain(&keys))?;
                match outbox {
                    Some(dir) => b.transport(FileDrop::new(dir)),
                    None => b,
                }
            }
        };
        // The settings as given; `build()` checks them all, naming the keys
        // in the words of `origin`.
        b.config = EmailConfig {
            password: None,
            ..self.clone()
        };
        self.alerts(b, getenv)
    }

    fn needs<'a>(
        &self,
        needed: &str,
        what: &str,
        mut keys: impl Iterator<Item = &'a (String, bool)>,
    ) -> Result<(), Error> {
        match keys.find(|(_, set)| *set) {
            Some((key, _)) => Err(Error::config(format!(
                "{key} is set but {} is not; it is {what}",
                self.name(needed)
            ))),
            None => Ok(()),
        }
    }

    #[cfg_attr(not(feature = "alertmanager"), allow(unused_variables))]
    fn alerts(
        &self,
        b: Builder,
        getenv: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Builder, Error> {
        if self.alertmanager_urls.is_empty() {
            let keys = [
                ("alertmanager_labels", !self.alertmanager_labels.is_empty()),
                ("alertmanager_user", self.alertmanager_user.is_some()),
                (
                    "alertmanager_password_env",
                    self.alertmanager_password_env.is_some(),
                ),
                (
                    "alertmanager_token_env",
                    self.alertmanager_token_env.is_some(),
                ),
                (
                    "alertmanager_root_certificate",
                    self.alertmanager_root_certificate.is_some(),
                ),
                ("alertmanager_timeout", self.alertmanager_timeout.is_some()),
                ("resolve_window", self.resolve_window.is_some()),
            ];
            let keys = keys.map(|(key, set)| (self.name(key), set));
            self.needs("alertmanager_urls", "an Alertmanager setting", keys.iter())?;
            return Ok(b);
        }
        #[cfg(feature = "alertmanager")]
        {
            Ok(b.alerts(self.alertmanager(getenv)?))
        }
        #[cfg(not(feature = "alertmanager"))]
        {
            Err(Error::config(format!(
                "{}: this program was built without tracing-email's `alertmanager` feature; \
                 enable the feature",
                self.name("alertmanager_urls")
            )))
        }
    }

    /// The config's fields as the settings of an [`Alertmanager`](crate::Alertmanager),
    /// which `check` checks at build as it checks those given in code.
    #[cfg(feature = "alertmanager")]
    fn alertmanager(
        &self,
        getenv: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<crate::Alertmanager, Error> {
        let am = crate::Alertmanager::new(self.alertmanager_urls.iter().map(|u| u.to_string()));
        let ca = self.alertmanager_root_certificate.as_ref();
        let ca = ca.map(|path| self.read("alertmanager_root_certificate", path, ErrorKind::Config));
        Ok(crate::Alertmanager {
            labels: self.alertmanager_labels.clone(),
            auth: self.alertmanager_login(getenv)?,
            root_certificate: ca.transpose()?,
            timeout: self.alertmanager_timeout.unwrap_or(am.timeout),
            resolve_window: self.resolve_window,
            origin: Some(self.origin.clone()),
            ..am
        })
    }

    /// Basic (a user, a password from a variable) or bearer, not both.
    #[cfg(feature = "alertmanager")]
    fn alertmanager_login(
        &self,
        getenv: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Option<crate::alerts::Auth>, Error> {
        use crate::alerts::Auth;
        let password_env = "alertmanager_password_env";
        let token_env = "alertmanager_token_env";
        let password = self.secret(password_env, &self.alertmanager_password_env, getenv)?;
        let token = self.secret(token_env, &self.alertmanager_token_env, getenv)?;
        let user = self.name("alertmanager_user");
        Ok(match (&self.alertmanager_user, password, token) {
            (None, None, None) => None,
            (Some(user), Some(password), None) => Some(Auth::Basic(user.clone(), password)),
            (None, None, Some(token)) => Some(Auth::Bearer(token)),
            (_, _, Some(_)) => {
                return Err(Error::config(format!(
                    "{user} and {} are both set; Alertmanager takes basic authentication or a \
                     bearer token, not both",
                    self.name(token_env),
                )));
            }
            _ => {
                return Err(Error::config(format!(
                    "{user} and {} go together (basic authentication): set both",
                    self.name(password_env),
                )));
            }
        })
    }

    #[cfg(feature = "smtp")]
    fn smtp(&self, url: &str, getenv: &dyn Fn(&str) -> Option<OsString>) -> Result<Smtp, Error> {
        let smtp_url = self.name("smtp_url");
        let smtp = Smtp::from_url(url)
            .map_err(|e| Error::with_source(ErrorKind::Smtp, smtp_url.clone(), e))?;
        let mut smtp = self.login(smtp, &smtp_url, getenv)?;
        // Its bounds are checked by `build()`, with the other durations.
        if let Some(d) = self.timeout {
            smtp = smtp.timeout(d);
        }
        if let Some(path) = &self.root_certificate {
            smtp = smtp.root_certificate(self.read("root_certificate", path, ErrorKind::Smtp)?);
        }
        if self.allow_insecure_auth {
            smtp = smtp.allow_insecure_auth();
        }
        Ok(smtp.named(self.origin.clone()))
    }

    /// One at most, and with a user name in the URL.
    #[cfg(feature = "smtp")]
    fn login(
        &self,
        mut smtp: Smtp,
        smtp_url: &str,
        getenv: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Smtp, Error> {
        let Some(source) = self.login_source(&smtp, smtp_url)? else {
            return Ok(smtp);
        };
        let password = self.secret("password_env", &self.password_env, getenv)?;
        let password = password.or_else(|| self.password.as_ref().map(|p| p.0.clone()));
        // The variable is read first: an unset one is the first thing to fix.
        if !smtp.has_password() && smtp.user().is_none() {
            return Err(Error::smtp(format!(
                "{source} is set but {smtp_url} has no user name; write it into the URL, such \
                 as smtps://me%40example.com@smtp.example.com"
            )));
        }
        if let Some(password) = password {
            smtp = smtp.password(password);
        }
        if let Some(argv) = &self.password_command {
            smtp = smtp.password_command(argv.iter().cloned());
        }
        if let Some(argv) = &self.oauth2_token_command {
            smtp = smtp.oauth2_token_command(argv.iter().cloned());
        }
        Ok(smtp)
    }

    #[cfg(feature = "smtp")]
    fn login_source(&self, smtp: &Smtp, smtp_url: &str) -> Result<Option<String>, Error> {
        let sources = [
            (smtp.has_password(), smtp_url.to_owned()),
            (self.password.is_some(), self.password_name()),
            (self.password_env.is_some(), self.name("password_env")),
            (
                self.password_command.is_some(),
                self.name("password_command"),
            ),
            (
                self.oauth2_token_command.is_some(),
                self.name("oauth2_token_command"),
            ),
        ];
        let mut given: Vec<String> = sources.into_iter().filter(|s| s.0).map(|s| s.1).collect();
        if given.len() < 2 {
            return Ok(given.pop());
        }
        let what = match self.oauth2_token_command {
            Some(_) => "login (a password or a token) is",
            None => "password is",
        };
        Err(Error::smtp(format!(
            "the SMTP {what} given more than once ({}); keep one",
            given.join(", ")
        )))
    }

    #[cfg(any(feature = "smtp", feature = "alertmanager"))]
    fn read(&self, key: &str, path: &std::path::Path, kind: ErrorKind) -> Result<Vec<u8>, Error> {
        std::fs::read(path).map_err(|e| {
            let message = format!("{}: could not read {}", self.name(key), path.display());
            Error::with_source(kind, message, e)
        })
    }

    fn password_name(&self) -> String {
        match &self.origin {
            Origin::Env(prefix) => format!("{prefix}_SMTP_PASSWORD"),
            _ => "the password given with set_password".to_owned(),
        }
    }

    #[cfg(any(feature = "smtp", feature = "alertmanager"))]
    fn secret(
        &self,
        key: &str,
        var: &Option<String>,
        getenv: &dyn Fn(&str) -> Option<OsString>,
    ) -> Result<Option<String>, Error> {
        let Some(var) = var else { return Ok(None) };
        let (what, itself, kind) = match key {
            "password_env" => ("the SMTP password", "password", ErrorKind::Smtp),
            "alertmanager_password_env" => {
                ("the Alertmanager password", "password", ErrorKind::Config)
            }
            _ => ("the Alertmanager bearer token", "token", ErrorKind::Config),
        };
        let key = self.name(key);
        // Not echoed unless it looks like a variable's name: someone may have
        // put the secret itself here.
        let is_name = !var.is_empty() && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !is_name {
            let message = format!(
                "{key} must be the name of the environment variable that holds {what} (letters, \
                 digits and _), not the {itself} itself"
            );
            return Err(Error::new(kind, message));
        }
        let problem = match getenv(var).map(OsString::into_string) {
            Some(Ok(p)) if !p.is_empty() => return Ok(Some(p)),
            None => format!("is not set; it should hold {what}"),
            Some(Err(_)) => "is not valid UTF-8".to_owned(),
            Some(Ok(_)) => "is empty".to_owned(),
        };
        let message = format!("{key}: the environment variable {var} {problem}");
        Err(Error::new(kind, message))
    }
}

impl EmailLayer {
    /// Makes the layer and its guard from an [`EmailConfig`], as
    /// [`Builder::build`] does. Reads the `password_env` variable and the
    /// `root_certificate` file; no network I/O.
    ///
    /// # Errors
    ///
    /// An error of kind [`ErrorKind::Config`] or [`ErrorKind::Smtp`] that
    /// names the key (or the variable, for a config from
    /// [`EmailConfig::from_env`]): `from` or `to` missing, neither or both
    /// of `smtp_url` and `outbox`, and everything
    /// [`EmailConfig::builder`] and [`Builder::build`] check. With
    /// `alertmanager_urls` and neither `smtp_url` nor `outbox`, alerts are the
    /// only destination and `from` and `to` are not needed.
    ///
    /// ```
    /// use tracing_email::{EmailConfig, EmailLayer};
    ///
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let (outbox, state) = (dir.path().join("outbox"), dir.path().join("state.json"));
    /// let config: EmailConfig = toml::from_str(&format!(r#"
    ///     app = "poca"
    ///     outbox = {outbox:?}
    ///     state_file = {state:?}
    ///     from = "poca <me@example.com>"
    ///     to = "me@example.com"
    /// "#))?;
    /// let (layer, guard) = EmailLayer::from_config(&config)?;
    ///
    /// let mut no_sender = config.clone();
    /// no_sender.from = None;
    /// let err = EmailLayer::from_config(&no_sender).unwrap_err();
    /// assert!(err.to_string().starts_with("from is not set"));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn from_config(config: &EmailConfig) -> Result<(EmailLayer, FlushGuard), Error> {
        config.builder()?.build()
    }
}

/// Read as a file's table is; an error names the variable.
#[derive(Clone)]
struct Vars<'a> {
    prefix: &'a str,
    found: &'a HashMap<String, Option<String>>,
    keys: std::slice::Iter<'static, &'static str>,
    key: &'static str,
}

impl<'de> Deserializer<'de> for Vars<'_> {
    type Error = value::Error;
    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _: &'static str,
        keys: &'static [&'static str],
        v: V,
    ) -> Result<V::Value, value::Error> {
        let keys = keys.iter();
        v.visit_map(Vars { keys, ..self })
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, value::Error> {
        v.visit_some(self)
    }
    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, value::Error> {
        v.visit_map(self)
    }
    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier ignored_any
    }
}

impl<'de> MapAccess<'de> for Vars<'_> {
    type Error = value::Error;
    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, value::Error> {
        let found = self.found;
        let given = |key: &&&str| **key == "policy" || found.contains_key(&key.to_uppercase());
        let Some(&key) = self.keys.find(given) else {
            return Ok(None);
        };
        self.key = key;
        seed.deserialize(key.into_deserializer()).map(Some)
    }
    fn next_value_seed<S: DeserializeSeed<'de>>(
        &mut self,
        seed: S,
    ) -> Result<S::Value, value::Error> {
        if self.key == "policy" {
            return seed.deserialize(self.clone());
        }
        let var = self.key.to_uppercase();
        let text = self.found.get(&var).and_then(Option::as_deref);
        let read = match (text, text.and_then(|text| form(self.key, text))) {
            (None, _) => Err(value::Error::custom("the value is not valid UTF-8")),
            (Some(text), None) => seed.deserialize(Text(text)),
            (Some(text), Some((value, expected))) => value
                .and_then(|value| seed.deserialize(value).ok())
                .ok_or_else(|| value::Error::custom(format!("{text:?} is not {expected}"))),
        };
        read.map_err(|e| value::Error::custom(format!("{}_{var}: {e}", self.prefix)))
    }
}

/// A number, or `true`/`false` in any case, when the key takes one, else text.
struct Text<'a>(&'a str);

impl<'de> Deserializer<'de> for Text<'_> {
    type Error = value::Error;
    fn deserialize_any<V: Visitor<'de>>(self, v: V) -> Result<V::Value, value::Error> {
        let t = self.0.trim();
        // A whole number beyond 64 bits is read as a float, which each
        // reader refuses as too large or not whole.
        match (t.parse::<i64>(), t.parse::<u64>(), t.parse::<f64>()) {
            (Ok(n), _, _) => v.visit_i64(n),
            (_, Ok(n), _) => v.visit_u64(n),
            (_, _, Ok(x)) => v.visit_f64(x),
            _ => self.deserialize_bool(v),
        }
    }
    fn deserialize_bool<V: Visitor<'de>>(self, v: V) -> Result<V::Value, value::Error> {
        match self.0.trim().to_ascii_lowercase().as_str() {
            "true" => v.visit_bool(true),
            "false" => v.visit_bool(false),
            _ => v.visit_str(self.0),
        }
    }
    fn deserialize_string<V: Visitor<'de>>(self, v: V) -> Result<V::Value, value::Error> {
        v.visit_str(self.0)
    }
    fn deserialize_option<V: Visitor<'de>>(self, v: V) -> Result<V::Value, value::Error> {
        v.visit_some(self)
    }
    serde::forward_to_deserialize_any! {
        i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str bytes byte_buf
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

fn form(key: &str, text: &str) -> Option<(Option<Value>, &'static str)> {
    let t = text.trim();
    let items = text
        .split(',')
        .map(|f| Some(f.trim()).filter(|f| !f.is_empty()));
    let items = items.collect::<Option<Vec<_>>>().map(|items| json!(items));
    Some(match key {
        "alertmanager_urls" => (
            items,
            "URLs separated by commas, such as http://am-0:9093,http://am-1:9093",
        ),
        "fingerprint_fields" => (items, "field names separated by commas, such as feed,url"),
        "password_command" | "oauth2_token_command" => {
            let argv = match t.starts_with('[') {
                true => serde_json::from_str(t).ok(),
                false => Some(json!(t.split_whitespace().collect::<Vec<_>>())),
            };
            let expected = "the program then its arguments, separated by spaces (pass show \
                            smtp), or a JSON list of strings when an argument holds a space \
                            ([\"secret-tool\", \"lookup\", \"service\", \"my smtp\"])";
            (argv, expected)
        }
        "alertmanager_labels" => {
            let pairs = text.split(',').map(|pair| {
                let (name, value) = pair.split_once('=')?;
                Some((name.trim().to_owned(), json!(value.trim())))
            });
            let labels = pairs.collect::<Option<serde_json::Map<_, _>>>();
            let expected = "name=value pairs separated by commas, such as team=media";
            (labels.map(Value::Object), expected)
        }
        "threshold" => {
            let pair = t.split_once(':').map(|(count, level)| {
                json!({ "count": count.trim().parse::<u64>().ok(), "level": level })
            });
            (pair, "COUNT:LEVEL, such as 5:warn")
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tracing::Level;

    use super::*;
    use crate::settings::{self as bounds};

    /// What `build()` says of `config`'s settings (they are checked there).
    fn build(config: &EmailConfig) -> Result<(), Error> {
        let (_layer, guard) = config.builder()?.build()?;
        std::mem::forget(guard); // dropping would flush into /nonexistent
        Ok(())
    }

    fn vars(pairs: &[(&str, &str)]) -> Result<EmailConfig, Error> {
        EmailConfig::from_vars("POCA", pairs.iter().copied())
    }

    /// A value that is not UTF-8 is an error in a variable this crate
    /// reads, and ignored in the program's own.
    #[test]
    fn a_value_not_utf8_is_named_only_where_it_is_read() {
        let read = |var: &'static str| {
            let vars = [("POCA_APP", Some("poca".to_owned())), (var, None)];
            EmailConfig::read_vars("POCA", vars.into_iter())
        };
        assert!(read("POCA_FEEDS").is_ok());
        for var in ["POCA_BATCH", "POCA_FROM", "POCA_SMTP_PASSWORD"] {
            let err = read(var).unwrap_err().to_string();
            assert_eq!(err, format!("{var}: the value is not valid UTF-8"));
        }
    }

    #[cfg(feature = "smtp")]
    fn smtp_config(password_env: &str) -> EmailConfig {
        let mut c: EmailConfig = serde_json::from_value(serde_json::json!({
            "app": "poca",
            "smtp_url": "smtps://me%40example.com@smtp.example.com",
            "password_env": password_env,
            "from": "me@example.com",
            "to": "me@example.com",
        }))
        .unwrap();
        c.state_file = Some("/nonexistent/state.json".into());
        c
    }

    #[cfg(feature = "smtp")]
    #[test]
    fn password_env_is_read_at_build_time_and_a_missing_variable_is_named() {
        let c = smtp_config("POCA_TEST_PASSWORD");
        let err = c.builder_with(&|_| None).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Smtp);
        assert_eq!(
            err.to_string(),
            "password_env: the environment variable POCA_TEST_PASSWORD is not set; it should \
             hold the SMTP password"
        );
        let err = c.builder_with(&|_| Some(OsString::new())).unwrap_err();
        assert!(
            err.to_string().contains("POCA_TEST_PASSWORD is empty"),
            "{err}"
        );

        let asked = std::cell::RefCell::new(Vec::new());
        let b = c
            .builder_with(&|name| {
                asked.borrow_mut().push(name.to_owned());
                Some("hunter2".into())
            })
            .unwrap();
        assert_eq!(*asked.borrow(), ["POCA_TEST_PASSWORD"]);
        let (_layer, guard) = b.build().unwrap();
        std::mem::forget(guard); // dropping would flush into /nonexistent
    }

    #[cfg(feature = "smtp")]
    #[test]
    fn a_password_put_in_password_env_by_mistake_is_not_echoed() {
        let c = smtp_config("correct horse battery staple");
        let err = c.builder_with(&|_| None).unwrap_err();
        let text = format!("{err} {err:?}");
        assert!(!text.contains("horse"), "{text}");
        assert!(text.contains("not the password itself"), "{text}");
    }

    #[test]
    fn errors_of_a_config_from_the_environment_name_the_variables() {
        let base = [
            ("POCA_APP", "poca"),
            ("POCA_OUTBOX", "/nonexistent/outbox"),
            ("POCA_STATE_FILE", "/nonexistent/state.json"),
            ("POCA_FROM", "me@example.com"),
            ("POCA_TO", "me@example.com"),
        ];
        let err_with = |extra: &[(&str, &str)]| {
            let all: Vec<_> = base.iter().chain(extra).copied().collect();
            let c = vars(&all).unwrap();
            EmailLayer::from_config(&c).unwrap_err().to_string()
        };
        assert!(
            err_with(&[("POCA_FROM", "robot@")]).starts_with("POCA_FROM: \"robot@\""),
            "{}",
            err_with(&[("POCA_FROM", "robot@")])
        );
        assert!(
            err_with(&[("POCA_SMTP_URL", "smtps://h")])
                .starts_with("POCA_SMTP_URL and POCA_OUTBOX are both set")
        );
        assert!(
            err_with(&[("POCA_TIMEOUT", "3")])
                .starts_with("POCA_TIMEOUT is set but POCA_SMTP_URL is not")
        );
        assert!(err_with(&[("POCA_FROM", "")]).starts_with("POCA_FROM is not set"));
    }

    #[test]
    fn keys_from_data_are_named_as_written() {
        let c = EmailConfig::default();
        assert_eq!(c.name("policy.threshold"), "policy.threshold");
        let e = vars(&[("POCA_APP", "x")]).unwrap();
        assert_eq!(e.name("policy.threshold"), "POCA_THRESHOLD");
        assert_eq!(e.name("smtp_url"), "POCA_SMTP_URL");
    }

    #[cfg(feature = "smtp")]
    #[test]
    fn zero_counts_and_durations_set_in_code_are_named() {
        let mut c = smtp_config("X");
        c.password_env = None;
        c.policy.batch = Some(0);
        assert_eq!(
            build(&c).unwrap_err().to_string(),
            "policy.batch: 0 is not allowed; use 1 or more"
        );
        c.policy.batch = None;
        c.checkpoint_interval = Some(Duration::ZERO);
        assert!(build(&c).unwrap_err().to_string().contains(
            "checkpoint_interval: must be longer than 0 seconds (false, or None in code, turns"
        ));
        c.checkpoint_interval = None;
        c.timeout = Some(Duration::ZERO);
        assert!(
            build(&c)
                .unwrap_err()
                .to_string()
                .starts_with("timeout: must be longer")
        );
    }

    /// A config that builds without touching the disk (unless flushed).
    fn outbox_config(extra: &[(&str, &str)]) -> EmailConfig {
        let base = [
            ("POCA_APP", "poca"),
            ("POCA_OUTBOX", "/nonexistent/outbox"),
            ("POCA_STATE_FILE", "/nonexistent/state.json"),
            ("POCA_FROM", "me@example.com"),
            ("POCA_TO", "me@example.com"),
            ("POCA_CHECKPOINT_INTERVAL", "false"),
        ];
        let all: Vec<_> = base.iter().chain(extra).copied().collect();
        vars(&all).unwrap()
    }

    /// The flusher's policy of the layer built from `config`.
    fn built_policy(config: &EmailConfig) -> crate::policy::Policy {
        let (_layer, guard) = EmailLayer::from_config(config).unwrap();
        let policy = crate::sync::lock(&guard.flusher).policy.clone();
        std::mem::forget(guard); // dropping would flush into /nonexistent
        policy
    }

    /// The Alertmanager keys from a file and from the environment reach the
    /// layer alike; alone, they need no email settings; errors name the key.
    #[cfg(feature = "alertmanager")]
    #[test]
    fn the_alertmanager_keys_from_a_file_or_the_environment_reach_the_layer() {
        let from_file: EmailConfig = toml::from_str(
            r#"
            app = "poca"
            state_file = "/nonexistent/state.json"
            checkpoint_interval = false
            alertmanager_urls = ["https://am-0:9093", "https://am-1:9093"]
            alertmanager_labels = { team = "media", env = "prod" }
            alertmanager_token_env = "AM_TOKEN"
            alertmanager_timeout = 2.5
            resolve_window = 3600
            host = "node-7"
            "#,
        )
        .unwrap();
        let from_env = vars(&[
            ("POCA_APP", "poca"),
            ("POCA_STATE_FILE", "/nonexistent/state.json"),
            ("POCA_CHECKPOINT_INTERVAL", "false"),
            (
                "POCA_ALERTMANAGER_URLS",
                "https://am-0:9093, https://am-1:9093",
            ),
            ("POCA_ALERTMANAGER_LABELS", "team=media, env=prod"),
            ("POCA_ALERTMANAGER_TOKEN_ENV", "AM_TOKEN"),
            ("POCA_ALERTMANAGER_TIMEOUT", "2.5"),
            ("POCA_RESOLVE_WINDOW", "3600"),
            ("POCA_HOST", "node-7"),
        ])
        .unwrap();
        let getenv = |name: &str| (name == "AM_TOKEN").then(|| OsString::from("tok-SECRET"));
        for config in [&from_file, &from_env] {
            assert!(!format!("{config:?}").contains("SECRET"));
            let (_layer, guard) = config.builder_with(&getenv).unwrap().build().unwrap();
            {
                let flusher = crate::sync::lock(&guard.flusher);
                assert!(flusher.transport.is_none());
                let alerts: &dyn std::any::Any = &**flusher.alerts.as_ref().unwrap();
                let poster = alerts.downcast_ref::<crate::alerts::Poster>().unwrap();
                assert_eq!(
                    poster.endpoints,
                    [
                        "https://am-0:9093/api/v2/alerts",
                        "https://am-1:9093/api/v2/alerts"
                    ]
                );
                assert_eq!(poster.identity.instance, "node-7");
                assert_eq!(poster.identity.labels["team"], "media");
                assert_eq!(poster.identity.labels["env"], "prod");
                assert_eq!(poster.timeout, Duration::from_millis(2500));
                assert_eq!(poster.resolve_window, Some(Duration::from_secs(3600)));
                let auth = poster.authorization.as_deref();
                assert_eq!(auth, Some("Bearer tok-SECRET"));
                assert!(!format!("{poster:?}").contains("SECRET"));
            }
            std::mem::forget(guard); // dropping would flush into /nonexistent
        }
        // Errors name the key (or variable).
        let env_err = |pairs: &[(&str, &str)]| {
            let mut all = vec![
                ("POCA_APP", "poca"),
                ("POCA_ALERTMANAGER_URLS", "http://am:9093"),
            ];
            all.extend_from_slice(pairs);
            match vars(&all) {
                Err(e) => e.to_string(),
                Ok(c) => match c.builder_with(&getenv) {
                    Err(e) => e.to_string(),
                    Ok(b) => b.build().map(|_| ()).unwrap_err().to_string(),
                },
            }
        };
        assert_eq!(
            env_err(&[("POCA_ALERTMANAGER_LABELS", "team")]),
            r#"POCA_ALERTMANAGER_LABELS: "team" is not name=value pairs separated by commas, such as team=media"#
        );
        assert!(
            env_err(&[("POCA_ALERTMANAGER_LABELS", "instance=x")]).starts_with(
                "POCA_ALERTMANAGER_LABELS: the label \"instance\" is set by tracing-email"
            )
        );
        assert!(
            env_err(&[("POCA_ALERTMANAGER_URLS", "am:9093")])
                .starts_with("POCA_ALERTMANAGER_URLS: \"am:9093\" is not an Alertmanager URL")
        );
        assert!(
            env_err(&[("POCA_ALERTMANAGER_TOKEN_ENV", "NOT_SET")]).starts_with(
                "POCA_ALERTMANAGER_TOKEN_ENV: the environment variable NOT_SET is not set"
            )
        );
        assert!(
            env_err(&[("POCA_ALERTMANAGER_USER", "me")])
                .contains("POCA_ALERTMANAGER_USER and POCA_ALERTMANAGER_PASSWORD_ENV go together")
        );
        assert!(
            env_err(&[("POCA_RESOLVE_WINDOW", "99999999")]).starts_with("POCA_RESOLVE_WINDOW: ")
        );
        // A token over plain HTTP to another host: refused, naming the key.
        let e = vars(&[
            ("POCA_APP", "poca"),
            ("POCA_ALERTMANAGER_URLS", "http://10.1.2.3:9093"),
            ("POCA_ALERTMANAGER_TOKEN_ENV", "AM_TOKEN"),
        ])
        .unwrap()
        .builder_with(&getenv)
        .and_then(|b| b.build().map(|_| ()))
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with(
                "POCA_ALERTMANAGER_URLS: refusing to send the Alertmanager bearer token to \
                 \"http://10.1.2.3:9093\" over a connection that is not encrypted; use https://"
            ),
            "{e}"
        );
        assert!(!e.contains("SECRET"), "{e}");
        let e = vars(&[
            ("POCA_APP", "poca"),
            ("POCA_HOST", "x"),
            ("POCA_RESOLVE_WINDOW", "60"),
        ])
        .unwrap()
        .builder_with(&getenv)
        .map(|_| ())
        .unwrap_err()
        .to_string();
        assert_eq!(
            e,
            "POCA_RESOLVE_WINDOW is set but POCA_ALERTMANAGER_URLS is not; it is an Alertmanager \
             setting"
        );
    }

    #[test]
    fn the_policy_rules_from_a_file_or_the_environment_reach_the_layer() {
        let mut from_data = outbox_config(&[]);
        from_data.origin = Origin::Data;
        from_data.policy = toml::from_str(
            r#"
            consecutive_runs = 4
            repeat_after = 86400
            min_interval = 0.5
            max_age = 604800
            fingerprint_fields = ["feed", "url"]
            "#,
        )
        .unwrap();
        let from_env = outbox_config(&[
            ("POCA_CONSECUTIVE_RUNS", "4"),
            ("POCA_REPEAT_AFTER", "86400"),
            ("POCA_MIN_INTERVAL", "0.5"),
            ("POCA_MAX_AGE", "604800"),
            ("POCA_FINGERPRINT_FIELDS", "feed, url"),
        ]);
        assert_eq!(from_env.policy, from_data.policy);
        let wanted = crate::policy::Policy {
            consecutive_runs: Some(4),
            repeat_after: Some(Duration::from_secs(86_400)),
            min_interval: Some(Duration::from_millis(500)),
            max_age: Some(Duration::from_secs(604_800)),
            fingerprint_fields: vec!["feed".into(), "url".into()],
            ..Default::default()
        };
        // No default threshold: consecutive_runs and max_age are rules.
        assert_eq!(built_policy(&from_data), wanted);
        assert_eq!(built_policy(&from_env), wanted);

        // repeat_after, min_interval and fingerprint_fields are no rules of
        // their own: the default threshold stays.
        let quiet = outbox_config(&[
            ("POCA_MIN_INTERVAL", "60"),
            ("POCA_FINGERPRINT_FIELDS", "feed"),
        ]);
        let policy = built_policy(&quiet);
        assert_eq!(policy.threshold, Some((1, Level::WARN)));
        assert_eq!(policy.min_interval, Some(Duration::from_secs(60)));
        assert_eq!(policy.fingerprint_fields, ["feed"]);
    }

    #[test]
    fn html_and_max_detail_lines_reach_the_layer() {
        let composer = |config: &EmailConfig| {
            let (_layer, guard) = EmailLayer::from_config(config).unwrap();
            let got = {
                let flusher = crate::sync::lock(&guard.flusher);
                (flusher.composer.html, flusher.composer.detail_lines)
            };
            std::mem::forget(guard); // dropping would flush into /nonexistent
            got
        };
        // The builder's defaults when left out: HTML on, 200 lines.
        assert_eq!(composer(&outbox_config(&[])), (true, 200));
        let from_env = outbox_config(&[("POCA_HTML", "FALSE"), ("POCA_MAX_DETAIL_LINES", "2")]);
        assert_eq!((from_env.html, from_env.max_detail_lines), (false, 2));
        assert_eq!(composer(&from_env), (false, 2));
        let mut from_data = outbox_config(&[]);
        from_data.html = true;
        from_data.max_detail_lines = 500;
        assert_eq!(composer(&from_data), (true, 500));

        from_data.max_detail_lines = 0;
        assert_eq!(
            EmailLayer::from_config(&from_data).unwrap_err().to_string(),
            "POCA_MAX_DETAIL_LINES: 0 is not allowed; use 1 or more"
        );
        from_data.origin = Origin::Data;
        assert_eq!(
            EmailLayer::from_config(&from_data).unwrap_err().to_string(),
            "max_detail_lines: 0 is not allowed; use 1 or more"
        );
    }

    #[test]
    fn zero_or_blank_policy_rules_set_in_code_are_named() {
        let err = |config: &EmailConfig| EmailLayer::from_config(config).unwrap_err().to_string();
        for origin in [
            Origin::Data,
            Origin::Table("email".into()),
            Origin::Env("POCA".into()),
        ] {
            let mut c = outbox_config(&[]);
            c.origin = origin.clone();
            let (runs, age, fields) = match origin {
                Origin::Code => unreachable!(),
                Origin::Data => (
                    "policy.consecutive_runs",
                    "policy.max_age",
                    "policy.fingerprint_fields",
                ),
                Origin::Table(_) => (
                    "email.policy.consecutive_runs",
                    "email.policy.max_age",
                    "email.policy.fingerprint_fields",
                ),
                Origin::Env(_) => (
                    "POCA_CONSECUTIVE_RUNS",
                    "POCA_MAX_AGE",
                    "POCA_FINGERPRINT_FIELDS",
                ),
            };
            c.policy.consecutive_runs = Some(0);
            assert_eq!(err(&c), format!("{runs}: 0 is not allowed; use 1 or more"));
            c.policy.consecutive_runs = None;
            c.policy.max_age = Some(Duration::ZERO);
            assert_eq!(
                err(&c),
                format!("{age}: must be longer than 0 seconds (leave it out to turn it off)")
            );
            c.policy.max_age = None;
            c.policy.fingerprint_fields = vec!["feed".into(), " ".into()];
            assert_eq!(err(&c), format!("{fields}: \" \" is not a field name"));
        }
    }

    /// Every duration key: its name in a file, its variable, its bound,
    /// whether 0 is allowed.
    const DURATIONS: [(&str, &str, Duration, bool); 8] = [
        ("send_deadline", "SEND_DEADLINE", bounds::DAY, true),
        ("lock_timeout", "LOCK_TIMEOUT", bounds::DAY, false),
        (
            "checkpoint_interval",
            "CHECKPOINT_INTERVAL",
            bounds::DAY,
            true,
        ),
        ("flush_every", "FLUSH_EVERY", bounds::DAY, true),
        ("timeout", "TIMEOUT", bounds::DAY, true),
        (
            "policy.repeat_after",
            "REPEAT_AFTER",
            bounds::TEN_YEARS,
            true,
        ),
        (
            "policy.min_interval",
            "MIN_INTERVAL",
            bounds::TEN_YEARS,
            true,
        ),
        ("policy.max_age", "MAX_AGE", bounds::TEN_YEARS, true),
    ];

    /// The duration settings of `c`, set or not.
    fn durations(c: &EmailConfig) -> [Option<Duration>; 8] {
        [
            Some(c.send_deadline),
            Some(c.lock_timeout),
            c.checkpoint_interval,
            c.flush_every,
            c.timeout,
            c.policy.repeat_after,
            c.policy.min_interval,
            c.policy.max_age,
        ]
    }

    /// `key = value` as TOML, in the `policy` table for `policy.` keys,
    /// read then checked as `build()` checks it.
    fn toml_with(key: &str, value: &str) -> Result<EmailConfig, String> {
        let text = match key.strip_prefix("policy.") {
            Some(k) => format!("app = \"poca\"\n[policy]\n{k} = {value}\n"),
            None => format!("app = \"poca\"\n{key} = {value}\n"),
        };
        let mut c = toml::from_str::<EmailConfig>(&text).map_err(|e| e.to_string())?;
        c.check().map_err(|e| e.to_string())?;
        Ok(c)
    }

    /// `POCA_APP=poca` and `var=value`, read then checked as `build()`
    /// checks them.
    fn env_with(var: &str, value: &str) -> Result<EmailConfig, String> {
        let mut c = vars(&[("POCA_APP", "poca"), (var, value)]).map_err(|e| e.to_string())?;
        c.check().map_err(|e| e.to_string())?;
        Ok(c)
    }

    #[test]
    fn each_duration_is_bounded_in_a_file_and_in_the_environment() {
        assert_eq!(bounds::DAY, Duration::from_secs(86_400));
        assert_eq!(bounds::TEN_YEARS, Duration::from_secs(3650 * 86_400));
        for (key, var, max, positive) in DURATIONS {
            let var = format!("POCA_{var}");
            let secs = max.as_secs();
            let days = secs / 86_400;
            // The one wording of a bound, whether from code, a file or a variable.
            let bound =
                format!("seconds is longer than the most allowed, {secs} seconds ({days} day");
            // The bound itself is accepted, whole or as a float.
            for ok in [format!("{secs}"), format!("{secs}.0")] {
                let c = toml_with(key, &ok).unwrap_or_else(|e| panic!("{key} = {ok}: {e}"));
                assert!(durations(&c).contains(&Some(max)), "{key} = {ok}");
                let env = env_with(&var, &ok).unwrap_or_else(|e| panic!("{var}={ok}: {e}"));
                assert!(durations(&env).contains(&Some(max)), "{var}={ok}");
            }
            // Just beyond it and far beyond it: refused by the one check,
            // which names the key (or variable) and the bound; too large
            // to be a duration at all, refused when read, naming the key.
            for bad in [
                format!("{}", secs + 1),
                format!("{secs}.001"),
                "1e19".to_owned(),
                "1.8e19".to_owned(),
            ] {
                let e = toml_with(key, &bad).unwrap_err();
                assert!(e.starts_with(&format!("{key}: ")), "{key} = {bad}: {e}");
                assert!(e.contains(&bound), "{key} = {bad}: {e}");
                let e = env_with(&var, &bad).unwrap_err();
                assert!(e.starts_with(&format!("{var}: ")), "{var}={bad}: {e}");
                assert!(e.contains(&bound), "{var}={bad}: {e}");
            }
            for bad in [
                "1.8446744073709552e19",
                "1e300",
                "-1",
                "-0.5",
                "nan",
                "inf",
                "-inf",
            ] {
                let e = toml_with(key, bad).unwrap_err();
                assert!(e.contains(&format!("for `{key}`")), "{key} = {bad}: {e}");
                let e = env_with(&var, bad).unwrap_err();
                assert!(e.starts_with(&format!("{var}: ")), "{var}={bad}: {e}");
                assert!(
                    e.contains("expected a number of seconds"),
                    "{var}={bad}: {e}"
                );
            }
            let zero = toml_with(key, "0");
            assert_eq!(
                zero.is_err(),
                positive,
                "{key} = 0: {zero:?}",
                zero = zero.err()
            );
            let zero = env_with(&var, "0").err();
            assert_eq!(zero.is_some(), positive, "{var}=0: {zero:?}");
            if let Some(e) = zero {
                assert!(
                    e.starts_with(&format!("{var}: must be longer than 0 seconds")),
                    "{e}"
                );
            }
        }
    }

    #[test]
    fn durations_set_in_code_beyond_their_bound_are_named() {
        for (key, var, max, _) in DURATIONS {
            if key == "timeout" && !cfg!(feature = "smtp") {
                continue;
            }
            for origin in [
                Origin::Data,
                Origin::Table("email".into()),
                Origin::Env("POCA".into()),
            ] {
                let mut c = outbox_config(&[]);
                if key == "timeout" {
                    c.outbox = None;
                    c.smtp_url = Some("smtps://smtp.example.com".into());
                }
                c.origin = origin.clone();
                let beyond = max + Duration::from_millis(1);
                let set = |c: &mut EmailConfig, d: Duration| match key {
                    "send_deadline" => c.send_deadline = d,
                    "lock_timeout" => c.lock_timeout = d,
                    "checkpoint_interval" => c.checkpoint_interval = Some(d),
                    "flush_every" => c.flush_every = Some(d),
                    "timeout" => c.timeout = Some(d),
                    "policy.repeat_after" => c.policy.repeat_after = Some(d),
                    "policy.min_interval" => c.policy.min_interval = Some(d),
                    _ => c.policy.max_age = Some(d),
                };
                set(&mut c, max);
                assert!(build(&c).is_ok(), "{key} at its bound");
                for d in [beyond, Duration::MAX] {
                    set(&mut c, d);
                    let e = build(&c).unwrap_err().to_string();
                    let name = match origin {
                        Origin::Code => unreachable!(),
                        Origin::Data => key.to_owned(),
                        Origin::Table(_) => format!("email.{key}"),
                        Origin::Env(_) => format!("POCA_{var}"),
                    };
                    assert!(e.starts_with(&format!("{name}: ")), "{e}");
                    assert!(
                        e.contains(&format!("the most allowed, {} seconds", max.as_secs())),
                        "{e}"
                    );
                }
            }
        }
    }

    /// `flush_every` from the environment reaches the layer (its worker
    /// then runs); below a second, the error names the variable.
    #[test]
    fn flush_every_is_read_from_the_environment_and_bounded_below() {
        let c = outbox_config(&[("POCA_FLUSH_EVERY", "300")]);
        assert_eq!(c.flush_every, Some(Duration::from_secs(300)));
        let (_layer, guard) = EmailLayer::from_config(&c).unwrap();
        assert!(guard.worker.is_some(), "no worker to flush every period");
        std::mem::forget(guard); // dropping would flush into /nonexistent
        let c = outbox_config(&[("POCA_FLUSH_EVERY", "0.5")]);
        let e = build(&c).unwrap_err().to_string();
        assert!(
            e.starts_with("POCA_FLUSH_EVERY: 0.5 seconds is shorter than the least allowed"),
            "{e}"
        );
    }

    #[test]
    fn a_list_where_one_value_is_wanted_is_refused_as_a_list() {
        let err = toml::from_str::<EmailConfig>("app = \"poca\"\n[policy]\nbatch = [1]")
            .unwrap_err()
            .to_string();
        let wanted = "invalid type: sequence, expected a whole number of at least 1 for \
                      `policy.batch`";
        assert!(err.contains(wanted), "{err}");
        let err = toml::from_str::<EmailConfig>("app = \"poca\"\nto = [\"a@b.c\", [\"x\"]]")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("invalid type: sequence, expected a string for `to`"),
            "{err}"
        );
    }

    #[test]
    fn a_wrong_type_and_a_wrong_value_are_told_apart() {
        let err = |text: &str| {
            let text = format!("app = \"poca\"\n{text}");
            toml::from_str::<EmailConfig>(&text)
                .unwrap_err()
                .to_string()
        };
        // `false` is a value checkpoint_interval takes, so `true` is a wrong
        // value there; no duration takes a boolean otherwise.
        assert!(err("checkpoint_interval = true").contains("invalid value: boolean `true`"));
        assert!(err("timeout = true").contains("invalid type: boolean `true`"));
        assert!(err("max_pending = -1").contains("invalid value: integer `-1`"));
        assert!(err("max_pending = 1.5").contains("invalid type: floating point `1.5`"));
        assert!(err("[policy]\nimmediately_at = 3").contains("invalid type: integer `3`"));
        assert!(err("to = 3").contains("invalid type: integer `3`, expected a string or a list"));
    }

    #[test]
    fn seconds_and_levels() {
        let read = |var: &str, value: &str| {
            let c = env_with(var, value).ok()?;
            Some((c.send_deadline, c.lock_timeout, c.policy.immediately_at))
        };
        let deadline = |v: &str| read("POCA_SEND_DEADLINE", v).map(|r| r.0);
        let day = Duration::from_secs(86_400);
        assert_eq!(deadline("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(deadline("10"), Some(Duration::from_secs(10)));
        assert_eq!(deadline("86400"), Some(day));
        let lock = read("POCA_LOCK_TIMEOUT", "0").map(|r| r.1);
        assert_eq!(lock, Some(Duration::ZERO));
        for bad in [
            "0",
            "-1",
            "-0.5",
            "NaN",
            "inf",
            "-inf",
            "1e-12",
            "ten",
            "86400.001",
            "86401",
            "1e19",
            "1.8e19",
            "18446744073709551615",
            "99999999999999999999999",
            "1e400",
        ] {
            let e = env_with("POCA_SEND_DEADLINE", bad).unwrap_err();
            assert!(e.starts_with("POCA_SEND_DEADLINE: "), "{bad}: {e}");
        }
        let level = |v: &str| read("POCA_IMMEDIATELY_AT", v).map(|r| r.2);
        assert_eq!(level("Warn"), Some(Some(Level::WARN)));
        assert_eq!(level("ERROR"), Some(Some(Level::ERROR)));
        assert_eq!(level("warning"), None);
    }
}
