//! Bearer-token check for mutating admin endpoints.

/// Outcome of checking a request's credentials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Granted,
    /// No token is configured: changes through the API are disabled (403).
    Disabled,
    /// Missing or wrong token (401).
    Denied,
}

/// Checks `Authorization: Bearer <token>` against `expected`. The comparison
/// takes the same time whatever the position of the first wrong byte.
pub fn check(expected: Option<&str>, authorization: Option<&[u8]>) -> Access {
    let Some(expected) = expected.filter(|t| !t.is_empty()) else {
        return Access::Disabled;
    };
    let Some(header) = authorization else {
        return Access::Denied;
    };
    let presented = match header.split_at_checked(7) {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case(b"bearer ") => token,
        _ => return Access::Denied,
    };
    if constant_time_eq(presented.trim_ascii(), expected.as_bytes()) {
        Access::Granted
    } else {
        Access::Denied
    }
}

/// Equality in time that depends only on the lengths. A length difference is
/// not hidden (the expected token's length is not a secret worth the cost).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    // Every byte is visited; `black_box` keeps the optimizer from turning
    // the fold into a loop that stops at the first difference.
    let diff = a
        .iter()
        .zip(b)
        .fold(0u8, |acc, (x, y)| acc | std::hint::black_box(x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens() {
        assert_eq!(check(None, Some(b"Bearer x")), Access::Disabled);
        assert_eq!(check(Some(""), Some(b"Bearer ")), Access::Disabled);
        assert_eq!(check(Some("s3cret"), None), Access::Denied);
        assert_eq!(check(Some("s3cret"), Some(b"Bearer s3cre")), Access::Denied);
        assert_eq!(check(Some("s3cret"), Some(b"Basic s3cret")), Access::Denied);
        assert_eq!(
            check(Some("s3cret"), Some(b"Bearer s3cret")),
            Access::Granted
        );
        assert_eq!(
            check(Some("s3cret"), Some(b"bearer s3cret ")),
            Access::Granted
        );
    }

    #[test]
    fn near_misses_are_denied() {
        let t = Some("s3cret");
        for header in [
            &b""[..],
            b"Bearer",
            b"Bearer ",
            b"Bearer  ",
            b"Bearers3cret",
            b"Bearer s3cre",
            b"Bearer s3crett",
            b"Bearer s3cret\0",
            b"Bearer S3CRET",
            b"Bearer x3cret",
            b"Bearer s3crex",
            b"Token s3cret",
            b"s3cret",
            b"Bearer \xffs3cret",
            b"Basic czNjcmV0",
        ] {
            assert_eq!(
                check(t, Some(header)),
                Access::Denied,
                "{}",
                String::from_utf8_lossy(header)
            );
        }
        // No token configured: refused whatever is presented.
        assert_eq!(check(None, Some(b"Bearer ")), Access::Disabled);
        assert_eq!(check(None, None), Access::Disabled);
    }

    #[test]
    fn constant_time_eq_is_equality() {
        assert!(constant_time_eq(b"", b""));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"xbc"));
        assert!(!constant_time_eq(b"abc", b"ab"));
        assert!(!constant_time_eq(b"ab", b"abc"));
        assert!(!constant_time_eq(b"", b"a"));
        // Every single-bit difference at every position is seen, so no
        // byte is skipped.
        let token = b"0123456789abcdef0123456789abcdef";
        for i in 0..token.len() {
            for bit in 0..8 {
                let mut other = *token;
                other[i] ^= 1 << bit;
                assert!(!constant_time_eq(token, &other), "byte {i} bit {bit}");
            }
        }
    }
}
