//! What a state file says of Alertmanager: the alerts it holds as firing
//! (or whose resolution is not accepted yet) and the last post with its
//! answer, read-only, as [`Snapshot`](crate::inspect::Snapshot) shows them.

use std::fmt;

use crate::capture::record::utc_time;
use crate::store::state::State;
pub use crate::store::state::{AlertPost, FiringAlert};

impl AlertPost {
    /// Whether at least one Alertmanager accepted it.
    ///
    /// ```
    /// # fn f(post: &tracing_email::inspect::AlertPost) {
    /// if post.is_accepted() { println!("delivered to {} of {}", post.accepted, post.of) }
    /// # }
    /// ```
    pub fn is_accepted(&self) -> bool {
        self.accepted > 0
    }
}

impl fmt::Display for AlertPost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let carried = format!("{} firing, {} resolved", self.firing, self.resolved);
        let of = crate::say::plural(self.of, "Alertmanager", "Alertmanagers");
        match &self.error {
            None => write!(f, "accepted by {} of {of} ({carried})", self.accepted),
            Some(error) => write!(f, "not accepted ({carried}): {error}"),
        }
    }
}

impl FiringAlert {
    /// Whether the failure still lasts (`resolved` is `None`). One that is
    /// over stays firing in Alertmanager until it accepts the resolution
    /// (or the alert's `endsAt` passes).
    ///
    /// ```
    /// # let dir = tempfile::tempdir().unwrap();
    /// # let snapshot = tracing_email::inspect::StateFile::open(dir.path().join("s.json")).snapshot()?;
    /// let firing = snapshot.alerts.iter().filter(|a| a.is_firing()).count();
    /// # Ok::<(), tracing_email::Error>(())
    /// ```
    pub fn is_firing(&self) -> bool {
        self.resolved.is_none()
    }
}

/// One line: `url "b.json" (warning): firing since …; accepted …;
/// alertname="poca", instance="node-1", team="media"`, or for one over,
/// `over at …, resolution not accepted yet; last accepted …, not by the post
/// of …; …`.
impl fmt::Display for FiringAlert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): ", self.failure, self.severity)?;
        match self.resolved {
            None => write!(f, "firing since {}", utc_time(self.since))?,
            Some(at) => write!(f, "over at {}, resolution not accepted yet", utc_time(at))?,
        }
        let post = self.last_post.as_ref().map(|p| p.at);
        match self.last_accepted {
            Some(at) if post.is_none_or(|post| post == at) => {
                write!(f, "; accepted {}", utc_time(at))?
            }
            Some(at) => write!(
                f,
                "; last accepted {}, not by the post of {}",
                utc_time(at),
                post.map(utc_time).unwrap_or_default()
            )?,
            None => f.write_str("; accepted (when: not kept by the version that posted it)")?,
        }
        // The labels but `failure` and `severity` (shown already).
        let labels: Vec<String> = self
            .labels
            .iter()
            .filter(|(k, _)| !matches!(k.as_str(), "failure" | "severity"))
            .map(|(k, v)| format!("{k}={v:?}"))
            .collect();
        if !labels.is_empty() {
            write!(f, "; {}", labels.join(", "))?;
        }
        Ok(())
    }
}

pub(crate) fn of(state: &State) -> Vec<FiringAlert> {
    let mut alerts: Vec<FiringAlert> = state.alerts.values().cloned().collect();
    for alert in &mut alerts {
        alert.last_post.clone_from(&state.alert_post);
    }
    alerts.sort_by_cached_key(|a| (a.resolved.is_some(), a.since, a.failure.clone()));
    alerts
}
