//! Where time comes from: the system clock, or one a test or a simulation
//! controls. Record timestamps and every time-based rule read it.

use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::buffer::lock;

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
/// use tracing_email::Clock;
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
/// use tracing_email::{Clock, SystemClock};
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
/// use tracing_email::{Clock, ManualClock};
///
/// let clock = ManualClock::new(UNIX_EPOCH + Duration::from_secs(1_700_000_000));
/// let seen_by_the_layer = clock.clone();
/// clock.advance(Duration::from_secs(3600));
/// assert_eq!(seen_by_the_layer.now(), UNIX_EPOCH + Duration::from_secs(1_700_003_600));
/// ```
#[derive(Clone)]
pub struct ManualClock {
    now: Arc<Mutex<SystemTime>>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("ManualClock").field(&self.now()).finish()
    }
}

impl ManualClock {
    /// A clock that reads `start`.
    ///
    /// ```
    /// let clock = tracing_email::ManualClock::new(std::time::SystemTime::now());
    /// ```
    pub fn new(start: SystemTime) -> Self {
        ManualClock {
            now: Arc::new(Mutex::new(start)),
        }
    }

    /// Sets the time.
    ///
    /// ```
    /// # use tracing_email::{Clock, ManualClock};
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
    /// # use tracing_email::{Clock, ManualClock};
    /// let clock = ManualClock::new(std::time::UNIX_EPOCH);
    /// clock.advance(std::time::Duration::from_secs(1));
    /// assert_eq!(clock.now(), std::time::UNIX_EPOCH + std::time::Duration::from_secs(1));
    /// ```
    pub fn advance(&self, by: Duration) {
        let mut now = lock(&self.now);
        *now += by;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> SystemTime {
        *lock(&self.now)
    }
}

thread_local! {
    /// Whether this thread is inside a user clock's `now`.
    static IN_CLOCK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// `clock.now()`, with a panic in it (user code) caught.
pub(crate) fn catch_now(clock: &dyn Clock) -> std::thread::Result<SystemTime> {
    let was = IN_CLOCK.try_with(|c| c.replace(true)).unwrap_or(false);
    let now = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| clock.now()));
    let _ = IN_CLOCK.try_with(|c| c.set(was));
    now
}

/// `clock.now()`, or the system's time if the clock panics: the event path
/// never panics.
pub(crate) fn now_or_system(clock: &dyn Clock) -> SystemTime {
    catch_now(clock).unwrap_or_else(|payload| {
        crate::flush::drop_payload(payload);
        SystemTime::now()
    })
}

/// For the panic hook: the clock's time, or the system's when the panic comes
/// from the clock itself (asking it again there would panic inside the
/// panic hook, which aborts the process); within the years a record can
/// hold.
pub(crate) fn now_in_panic_hook(clock: &dyn Clock) -> SystemTime {
    let now = if IN_CLOCK.try_with(std::cell::Cell::get).unwrap_or(true) {
        SystemTime::now()
    } else {
        clock.now()
    };
    crate::buffer::representable(now)
}
