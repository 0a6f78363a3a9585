//! A value a session makes at most once and shares between the cells that run in parallel: a kernel, the
//! kernel selftests.

use std::sync::{Mutex, TryLockError};

use anyhow::Result;

/// A value made once: not made yet, made, or failed (with its error, kept). Its lock is held while the
/// value is being made, so that the other cells that need it wait for it instead of making it too.
#[derive(Debug)]
pub struct OnceSlot<T> {
    value: Mutex<Option<Result<T, String>>>,
}

impl<T> Default for OnceSlot<T> {
    fn default() -> Self {
        OnceSlot { value: Mutex::new(None) }
    }
}

impl<T: Clone> OnceSlot<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// The value: the one made before, the error its making ended with, or else made now by `make` (while
    /// the others wait). An interrupt is not the value's fault: a failure while cancelled is not kept, so
    /// the next attempt may succeed.
    pub fn get_or_make(&self, make: impl FnOnce() -> Result<T>) -> Result<T> {
        let mut value = self.value.lock().unwrap_or_else(|e| e.into_inner());
        match value.as_ref() {
            Some(Ok(made)) => return Ok(made.clone()),
            Some(Err(error)) => anyhow::bail!("{error}"),
            None => {}
        }
        match make() {
            Ok(made) => {
                *value = Some(Ok(made.clone()));
                Ok(made)
            }
            Err(error) => {
                if !ksnap_vm::children::is_cancelled() {
                    *value = Some(Err(format!("{error:#}")));
                }
                Err(error)
            }
        }
    }

    /// Whether the value is decided (made, or failed): not while it is being made. A slot whose maker
    /// panicked counts as decided: the cell's own attempt says what is wrong.
    pub fn is_decided(&self) -> bool {
        match self.value.try_lock() {
            Ok(value) => value.is_some(),
            Err(TryLockError::WouldBlock) => false,
            Err(TryLockError::Poisoned(_)) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_decided_once_filled_and_not_while_being_filled() {
        let slot: OnceSlot<u32> = OnceSlot::new();
        assert!(!slot.is_decided());
        let _ = slot.get_or_make(|| {
            assert!(!slot.is_decided(), "locked by its maker: not decided yet");
            anyhow::bail!("no such kernel")
        });
        assert!(slot.is_decided(), "a failure is decided too: the cell reports it");
        assert_eq!(slot.get_or_make(|| Ok(1)).unwrap_err().to_string(), "no such kernel", "the failure is kept");
        let poisoned: OnceSlot<u32> = OnceSlot::new();
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = poisoned.get_or_make(|| panic!("the build panicked"));
        }));
        assert!(poisoned.is_decided(), "a panicked maker must not leave cells waiting forever");
    }
}
