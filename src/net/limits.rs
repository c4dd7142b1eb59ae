//! Connection caps: in total and per source address. A slot is held for the life of the
//! connection and given back when its guard drops.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

#[derive(Debug)]
pub struct ConnectionLimits {
    max_total: usize,
    max_per_address: usize,
    open: Mutex<(usize, HashMap<IpAddr, usize>)>,
}

/// Proof that a connection holds a slot.
#[derive(Debug)]
pub struct Slot {
    limits: Arc<ConnectionLimits>,
    address: IpAddr,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    Total,
    PerAddress,
}

impl ConnectionLimits {
    pub fn new(max_total: usize, max_per_address: usize) -> Arc<Self> {
        Arc::new(Self {
            max_total,
            max_per_address,
            open: Mutex::new((0, HashMap::new())),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, (usize, HashMap<IpAddr, usize>)> {
        // Counts are updated in one step each; a poisoned lock still holds valid counts.
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn acquire(self: &Arc<Self>, address: IpAddr) -> Result<Slot, Refusal> {
        let mut open = self.lock();
        if open.0 >= self.max_total {
            return Err(Refusal::Total);
        }
        let from_address = open.1.entry(address).or_insert(0);
        if *from_address >= self.max_per_address {
            return Err(Refusal::PerAddress);
        }
        *from_address += 1;
        open.0 += 1;
        Ok(Slot {
            limits: self.clone(),
            address,
        })
    }

    pub fn open(&self) -> usize {
        self.lock().0
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut open = self.limits.lock();
        open.0 = open.0.saturating_sub(1);
        if let Some(count) = open.1.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.1.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps_and_release() {
        let limits = ConnectionLimits::new(3, 2);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let s1 = limits.acquire(a).unwrap();
        let _s2 = limits.acquire(a).unwrap();
        assert_eq!(limits.acquire(a).unwrap_err(), Refusal::PerAddress);
        let _s3 = limits.acquire(b).unwrap();
        assert_eq!(limits.acquire(b).unwrap_err(), Refusal::Total);
        drop(s1);
        assert_eq!(limits.open(), 2);
        assert!(limits.acquire(a).is_ok());
    }
}
