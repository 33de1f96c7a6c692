//! The conformance suite every EventStore backend runs (to be written).
