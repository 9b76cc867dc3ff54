//! The in-RAM index: key to flash address, kept sorted, with the flash the
//! live records occupy, updated only after a commit's last write.

use super::*;

impl<F: NorFlash, const KEYS: usize> Store<F, KEYS> {
    pub(super) fn apply(&mut self, s: &Seen) -> Result<(), StoreError> {
        match s.kind {
            Kind::Put => self.index_put(Slot {
                key: s.key,
                addr: s.addr,
                len: s.len,
            }),
            Kind::Delete => {
                self.index_remove(s.key);
                Ok(())
            }
            Kind::Clear => {
                self.index.retain(|slot| Key::is_system(slot.key));
                let g = self.geometry;
                self.live = self
                    .index
                    .iter()
                    .map(|s| g.entry_size(usize::from(s.len)))
                    .sum();
                Ok(())
            }
        }
    }

    pub(super) fn index_put(&mut self, slot: Slot) -> Result<(), StoreError> {
        let size = self.geometry.entry_size(usize::from(slot.len));
        match self.index.binary_search_by_key(&slot.key, |s| s.key) {
            Ok(i) => {
                if let Some(s) = self.index.get_mut(i) {
                    let old = self.geometry.entry_size(usize::from(s.len));
                    self.live = self.live.saturating_sub(old) + size;
                    *s = slot;
                }
                Ok(())
            }
            Err(i) => {
                self.index
                    .insert(i, slot)
                    .map_err(|_| StoreError::TooManyKeys)?;
                self.live += size;
                Ok(())
            }
        }
    }

    pub(super) fn index_remove(&mut self, key: u16) {
        if let Ok(i) = self.index.binary_search_by_key(&key, |s| s.key) {
            let removed = self.index.remove(i);
            let size = self.geometry.entry_size(usize::from(removed.len));
            self.live = self.live.saturating_sub(size);
        }
    }

    pub(super) fn slot(&self, key: u16) -> Option<Slot> {
        let i = self.index.binary_search_by_key(&key, |s| s.key).ok()?;
        self.index.get(i).copied()
    }

    /// Flash bytes the indexed records occupy (kept up to date by the
    /// index updates, so commits need not add them up).
    pub(super) fn live_bytes(&self) -> u32 {
        self.live
    }
}
