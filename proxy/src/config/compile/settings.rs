//! File-wide settings that are neither listeners nor tables: the format
//! `version` and the `store` URL.

use crate::config::defaults::DEFAULT_STORE;
use crate::config::error::{ErrorSink, Place};
use crate::config::model::StoreUrl;
use crate::config::raw::Scalar;

/// The one format this build reads. Required, so that a later format can
/// change a key's meaning without an old file being read the new way.
const SUPPORTED_VERSION: f64 = 1.0;

pub(super) fn check_version(sink: &mut ErrorSink, raw: Option<&Scalar>) {
    let place = Place::root().key("version");
    match raw {
        None => sink.push(place, "missing; this file format is version 1"),
        Some(Scalar::Number(n)) if *n == SUPPORTED_VERSION => {}
        Some(other) => sink.push(
            place,
            format!(
                "{} is not supported (this strangler reads version 1)",
                other.as_text()
            ),
        ),
    }
}

pub(super) fn compile_store(sink: &mut ErrorSink, raw: Option<&str>) -> Option<StoreUrl> {
    sink.check(
        &Place::root().key("store"),
        StoreUrl::new(raw.unwrap_or(DEFAULT_STORE)),
    )
}
