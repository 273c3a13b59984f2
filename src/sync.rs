//! Locking a mutex whatever happened to it: a thread that panicked while
//! holding one (a panic in a user's `Clock` or `Transport` during a flush)
//! must not make every later lock fail, so the data is taken as it is. Used
//! by every stage; imports nothing of this crate.

use std::sync::{Mutex, MutexGuard, PoisonError, TryLockError};

/// Takes the data even if a thread panicked holding it: a push never leaves a
/// queue half-updated.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

pub(crate) fn try_lock<T>(m: &Mutex<T>) -> Option<MutexGuard<'_, T>> {
    match m.try_lock() {
        Ok(guard) => Some(guard),
        Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
        Err(TryLockError::WouldBlock) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_poisoned_mutex_is_still_locked_and_a_held_one_is_not() {
        let m = Mutex::new(1);
        let _ = std::panic::catch_unwind(|| {
            let _held = m.lock();
            panic!("while holding it");
        });
        assert!(m.is_poisoned());
        *lock(&m) += 1;
        *try_lock(&m).expect("poisoned, not held") += 1;
        let held = lock(&m);
        assert!(try_lock(&m).is_none());
        assert_eq!(*held, 3);
    }
}
