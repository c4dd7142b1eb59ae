//! Connection caps: in total and per source address. A slot is held for the life of the
//! connection and given back when its guard drops.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};

/// The key a per-address limit counts under: an IPv4 address itself, an IPv6 address by
/// its /64 (one subscriber's network: a single host may hold any number of addresses in
/// it). IPv4-mapped IPv6 addresses count as the IPv4 address they carry.
pub fn address_group(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 64) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
        v4 => v4,
    }
}

/// The network an address belongs to, for limits one level above a single subscriber:
/// an IPv4 /24, an IPv6 /48 (a site).
pub fn network_prefix(address: IpAddr) -> IpAddr {
    match address.to_canonical() {
        IpAddr::V4(v4) => IpAddr::V4(std::net::Ipv4Addr::from(u32::from(v4) & 0xffff_ff00)),
        IpAddr::V6(v6) => {
            let prefix = u128::from(v6) & !((1u128 << 80) - 1);
            IpAddr::V6(Ipv6Addr::from(prefix))
        }
    }
}

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
        let address = address_group(address);
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
    #[test]
    fn ipv6_addresses_count_by_their_64_and_mapped_ones_as_ipv4() {
        let limits = ConnectionLimits::new(100, 2);
        let ip = |text: &str| text.parse::<IpAddr>().unwrap();
        let _a = limits.acquire(ip("2001:db8:1:2::1")).unwrap();
        let _b = limits.acquire(ip("2001:db8:1:2:ffff::7")).unwrap();
        assert_eq!(
            limits.acquire(ip("2001:db8:1:2:abcd::9")).unwrap_err(),
            Refusal::PerAddress,
            "a third address in the same /64"
        );
        let _c = limits.acquire(ip("2001:db8:1:3::1")).unwrap();
        let _d = limits.acquire(ip("192.0.2.1")).unwrap();
        let _e = limits.acquire(ip("::ffff:192.0.2.1")).unwrap();
        assert_eq!(
            limits.acquire(ip("192.0.2.1")).unwrap_err(),
            Refusal::PerAddress,
            "the mapped address is the same IPv4 address"
        );
    }

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
