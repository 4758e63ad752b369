//! The canary draw: a stable hash of a sticky key, compared with the route's
//! percentage.
//!
//! The hash is part of the product's behaviour: it must give the same bucket
//! on every instance, across restarts and across releases, or users would
//! flip between legacy and new. It is therefore written out here (FNV-1a 64
//! followed by the MurmurHash3 finalizer for avalanche) rather than taken from
//! `std`, whose hasher may change, and pinned by test vectors.

use crate::config::model::Percent;

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

/// Hash of `key` within `salt`. Different salts give independent draws.
pub fn stable_hash(salt: &[u8], key: &[u8]) -> u64 {
    let mut h = FNV_OFFSET;
    for &b in salt {
        h ^= b as u64;
        h = h.wrapping_mul(FNV_PRIME);
    }
    // A separator byte no text salt contains, so ("ab","c") != ("a","bc").
    h ^= 0xff;
    h = h.wrapping_mul(FNV_PRIME);
    for &b in key {
        h ^= b as u64;
        h = h.wrapping_mul(FNV_PRIME);
    }
    fmix64(h)
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^= k >> 33;
    k
}

/// Where a hash falls on the 0..100 scale that percentages use.
pub fn bucket_of(hash: u64) -> f64 {
    hash as f64 / 18_446_744_073_709_551_616.0 * 100.0
}

/// True when a key with this hash is in the first `percent` of keys. Raising
/// the percentage never turns a `true` into `false`.
pub fn selected(hash: u64, percent: Percent) -> bool {
    let threshold = percent.hash_threshold();
    threshold == u64::MAX || hash < threshold
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn the_hash_is_frozen() {
        // If these change, every sticky user on every deployment moves side.
        assert_eq!(stable_hash(b"orders", b"acme"), 0x98d0_b1f9_071d_a4fb);
        assert_eq!(stable_hash(b"orders", b""), 0x773b_ab4e_eb08_2adb);
        assert_eq!(stable_hash(b"", b"acme"), 0x3165_c317_1687_8035);
    }

    #[test]
    fn salts_and_keys_do_not_run_together() {
        assert_ne!(stable_hash(b"ab", b"c"), stable_hash(b"a", b"bc"));
    }

    #[test]
    fn share_over_100k_keys_is_within_one_point() {
        for setting in [0.5, 1.0, 5.0, 10.0, 12.5, 33.3, 50.0, 90.0, 99.0] {
            let p = Percent::new(setting).unwrap();
            let n = 100_000u32;
            let hits = (0..n)
                .filter(|i| selected(stable_hash(b"orders", format!("tenant-{i}").as_bytes()), p))
                .count();
            let share = hits as f64 * 100.0 / n as f64;
            assert!(
                (share - setting).abs() < 1.0,
                "setting {setting}: share {share}"
            );
        }
    }

    #[test]
    fn edges() {
        assert!(!selected(0, Percent::ZERO));
        assert!(selected(u64::MAX, Percent::HUNDRED));
        assert!(selected(0, Percent::new(0.0001).unwrap()));
    }

    proptest! {
        /// Raising the percentage only moves keys from legacy to new.
        #[test]
        fn raising_the_percentage_never_moves_a_key_back(
            key in proptest::collection::vec(any::<u8>(), 0..32),
            salt in "[a-z-]{1,12}",
            low in 0.0f64..=100.0,
            raise in 0.0f64..=100.0,
        ) {
            let high = (low + raise).min(100.0);
            let h = stable_hash(salt.as_bytes(), &key);
            let at_low = selected(h, Percent::new(low).unwrap());
            let at_high = selected(h, Percent::new(high).unwrap());
            prop_assert!(!at_low || at_high, "key moved back to legacy: {low} -> {high}");
        }

        #[test]
        fn the_bucket_agrees_with_selection(hash in any::<u64>(), p in 0.0f64..100.0) {
            let percent = Percent::new(p).unwrap();
            // Away from the boundary, the printed bucket tells the decision.
            let bucket = bucket_of(hash);
            if (bucket - p).abs() > 1e-9 {
                prop_assert_eq!(selected(hash, percent), bucket < p);
            }
        }
    }
}
