//! `tenant`: the ordered list of places a request's tenant is read from
//! (a header, a label of the host, a cookie or a JWT claim).

use super::values::{cookie_name, header_name};
use crate::config::error::{ErrorSink, Place};
use crate::config::model::TenantSource;
use crate::config::raw::{Lenient, RawTenantSource, Scalar};

/// Highest host label index accepted; real host names have far fewer
/// labels, so a larger index is a typo that would never find a tenant.
const MAX_HOST_LABEL: f64 = 16.0;

pub(super) fn compile_tenant_sources(
    sink: &mut ErrorSink,
    raw: &[Lenient<RawTenantSource>],
) -> Vec<TenantSource> {
    let mut sources = Vec::new();
    for (i, element) in raw.iter().enumerate() {
        let place = Place::root().key("tenant").index(i);
        sink.push_under(&place, &element.0.errors);
        let Some(source) = &element.0.value else {
            continue;
        };
        let given = [
            source.header.is_some(),
            source.host_label.is_some(),
            source.cookie.is_some(),
            source.jwt_claim.is_some(),
        ]
        .iter()
        .filter(|x| **x)
        .count();
        if given != 1 {
            // An entry whose only key was unknown has been reported already.
            if given > 0 || element.0.errors.is_empty() {
                sink.push(
                    place,
                    "give exactly one of header, host_label, cookie, jwt_claim per entry",
                );
            }
            continue;
        }
        sources.extend(compile_tenant_source(sink, &place, source));
    }
    sources
}

/// One entry that names exactly one source.
fn compile_tenant_source(
    sink: &mut ErrorSink,
    place: &Place,
    source: &RawTenantSource,
) -> Option<TenantSource> {
    if let Some(h) = &source.header {
        sink.check(&place.key("header"), header_name(h))
            .map(TenantSource::Header)
    } else if let Some(label) = &source.host_label {
        sink.check(&place.key("host_label"), host_label(label))
            .map(TenantSource::HostLabel)
    } else if let Some(c) = &source.cookie {
        sink.check(&place.key("cookie"), cookie_name(c))
            .map(TenantSource::Cookie)
    } else if let Some(claim) = &source.jwt_claim {
        if claim.is_empty() {
            sink.push(place.key("jwt_claim"), "is empty");
            None
        } else {
            Some(TenantSource::JwtClaim(claim.clone()))
        }
    } else {
        None
    }
}

fn host_label(raw: &Scalar) -> Result<usize, String> {
    match raw {
        Scalar::Number(n) if n.fract() == 0.0 && (0.0..=MAX_HOST_LABEL).contains(n) => {
            Ok(*n as usize)
        }
        other => Err(format!(
            "{} is not a label index (0 is the leftmost label, up to 16)",
            other.as_text()
        )),
    }
}
