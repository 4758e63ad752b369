//! Store faults: the diff database down or its disk full.
