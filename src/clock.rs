//! Where time comes from: the system clock, or one a test or a simulation
//! controls. Record timestamps and every time-based rule read it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use time::OffsetDateTime;

use crate::sync::lock;

pub(crate) const EARLIEST: OffsetDateTime = time::macros::datetime!(0000-01-01 0:00 UTC);
pub(crate) const LATEST: OffsetDateTime =
    time::macros::datetime!(9999-12-31 23:59:59.999_999_999 UTC);

/// Moved into the years 0000 to 9999 (what `time` and a state file hold): never panics.
pub(crate) fn datetime(t: SystemTime) -> OffsetDateTime {
    let nanos = match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(after) => i128::try_from(after.as_nanos()).unwrap_or(i128::MAX),
        Err(before) => i128::try_from(before.duration().as_nanos()).map_or(i128::MIN, |n| -n),
    };
    let nanos = nanos.clamp(
        EARLIEST.unix_timestamp_nanos(),
        LATEST.unix_timestamp_nanos(),
    );
    OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap_or(LATEST)
}

/// From 1970 to the end of 9999 ([`LATEST`]).
pub(crate) fn representable(time: SystemTime) -> SystemTime {
    // Called for every record: [`LATEST`] is converted once, not each time.
    time.clamp(SystemTime::UNIX_EPOCH, *LATEST_SYSTEM_TIME)
}

static LATEST_SYSTEM_TIME: std::sync::LazyLock<SystemTime> =
    std::sync::LazyLock::new(|| SystemTime::from(LATEST));

/// Or the latest this platform's `Instant` reaches: never panics, however long `d` is.
pub(crate) fn instant_after(d: Duration) -> Instant {
    let now = Instant::now();
    // The first of d, d/2, d/4, … that fits: at worst zero.
    std::iter::successors(Some(d), |d| Some(*d / 2))
        .find_map(|d| now.checked_add(d))
        .unwrap_or(now)
}

/// A source of the current time.
///
/// The layer reads it for each record's timestamp, and the policy for its
/// time-based rules ([`repeat_after`](crate::Builder::repeat_after),
/// [`min_interval`](crate::Builder::min_interval),
/// [`max_age`](crate::Builder::max_age)). Keep `now` cheap: it runs on the
/// event path.
///
/// ```
/// use std::time::SystemTime;
/// use tracing_email::clock::Clock;
///
/// /// Always the same moment.
/// struct Frozen(SystemTime);
/// impl Clock for Frozen {
///     fn now(&self) -> SystemTime { self.0 }
/// }
/// ```
pub trait Clock: Send + Sync + 'static {
    /// The current time.
    fn now(&self) -> SystemTime;
}

/// The system's clock; the default.
///
/// ```
/// use tracing_email::{clock::Clock, clock::SystemClock};
/// assert!(SystemClock.now() > std::time::UNIX_EPOCH);
/// ```
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// A clock that moves only when told: for tests and simulations. Clones
/// share the same time.
///
/// ```
/// use std::time::{Duration, UNIX_EPOCH};
/// use tracing_email::{clock::Clock, clock::ManualClock};
///
/// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
/// let seen_by_the_layer = clock.clone();
/// clock.advance(Duration::from_secs(3600));
/// assert_eq!(seen_by_the_layer.now(), UNIX_EPOCH + Duration::from_secs(1_700_003_600));
/// ```
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<SystemTime>>,
}

impl ManualClock {
    /// A clock that reads `start`.
    ///
    /// ```
    /// let clock = tracing_email::clock::ManualClock::new(std::time::SystemTime::now());
    /// ```
    pub fn new(start: SystemTime) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Sets the time.
    ///
    /// ```
    /// # use tracing_email::{clock::Clock, clock::ManualClock};
    /// let clock = ManualClock::new(std::time::UNIX_EPOCH);
    /// clock.set(std::time::UNIX_EPOCH + std::time::Duration::from_secs(60));
    /// assert_eq!(clock.now(), std::time::UNIX_EPOCH + std::time::Duration::from_secs(60));
    /// ```
    pub fn set(&self, now: SystemTime) {
        *lock(&self.now) = now;
    }

    /// Moves the time forward.
    ///
    /// ```
    /// # use tracing_email::{clock::Clock, clock::ManualClock};
    /// let clock = ManualClock::new(std::time::UNIX_EPOCH);
    /// clock.advance(std::time::Duration::from_secs(1));
    /// assert_eq!(clock.now(), std::time::UNIX_EPOCH + std::time::Duration::from_secs(1));
    /// ```
    pub fn advance(&self, by: Duration) {
        *lock(&self.now) += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *lock(&self.now)
    }
}

thread_local! {
    static IN_CLOCK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

pub(crate) fn catch_now(clock: &dyn Clock) -> std::thread::Result<SystemTime> {
    let was = IN_CLOCK.try_with(|c| c.replace(true)).unwrap_or(false);
    let now = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| clock.now()));
    let _ = IN_CLOCK.try_with(|c| c.set(was));
    now
}

pub(crate) fn now_or_system(clock: &dyn Clock) -> SystemTime {
    catch_now(clock).unwrap_or_else(|payload| {
        crate::error::drop_payload(payload);
        SystemTime::now()
    })
}

/// Asking the clock again when the panic comes from it would panic inside the
/// panic hook, which aborts the process.
pub(crate) fn now_in_panic_hook(clock: &dyn Clock) -> SystemTime {
    let now = if IN_CLOCK.try_with(std::cell::Cell::get).unwrap_or(true) {
        SystemTime::now()
    } else {
        clock.now()
    };
    representable(now)
}

#[cfg(test)]
mod tests {
    use super::*;
    use time::macros::datetime;

    #[test]
    fn any_clock_reading_becomes_a_time_a_state_file_can_hold() {
        let epoch = SystemTime::UNIX_EPOCH;
        let secs = Duration::from_secs;
        assert_eq!(datetime(epoch), OffsetDateTime::UNIX_EPOCH);
        assert_eq!(
            datetime(epoch + secs(1_700_000_000)),
            datetime!(2023-11-14 22:13:20 UTC)
        );
        // Beyond year 9999 or before year 0: the nearest end, no panic.
        for (t, expected) in [
            (epoch.checked_add(secs(400_000_000_000)), LATEST),
            (epoch.checked_add(secs(i64::MAX as u64)), LATEST),
            (epoch.checked_sub(secs(400_000_000_000)), EARLIEST),
            (epoch.checked_sub(secs(i64::MAX as u64)), EARLIEST),
        ] {
            let Some(t) = t else { continue }; // beyond this platform's SystemTime
            assert_eq!(datetime(t), expected, "{t:?}");
        }
        for t in [EARLIEST, LATEST] {
            assert_eq!(datetime(SystemTime::from(t)), t);
            let text = t
                .format(&time::format_description::well_known::Rfc3339)
                .unwrap();
            assert!(
                text.starts_with("0000-") || text.starts_with("9999-"),
                "{text}"
            );
        }
    }

    #[test]
    fn times_a_record_cannot_hold_are_clamped() {
        let far = SystemTime::UNIX_EPOCH + Duration::from_secs(1 << 40); // the year 36812
        let shown = time::OffsetDateTime::from(representable(far));
        assert_eq!(
            (shown.year(), shown.month() as u8, shown.day()),
            (9999, 12, 31)
        );
        let before = SystemTime::UNIX_EPOCH - Duration::from_secs(1);
        assert_eq!(representable(before), SystemTime::UNIX_EPOCH);
        let now = SystemTime::now();
        assert_eq!(representable(now), now);
    }

    #[test]
    fn an_instant_after_any_duration_never_panics() {
        let before = Instant::now();
        let soon = instant_after(Duration::from_secs(5));
        assert!(soon >= before + Duration::from_secs(5));
        assert!(soon <= Instant::now() + Duration::from_secs(5));
        let never = instant_after(Duration::MAX);
        assert!(never > Instant::now() + Duration::from_secs(100 * 365 * 86_400));
        assert!(instant_after(Duration::ZERO) <= Instant::now());
    }
}
