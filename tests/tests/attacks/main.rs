//! The attack corpus (issue #5): hostile requests against the built filter inside a real
//! Envoy, each checked against the exact answer SPEC sections 3 and 4 prescribe (status,
//! challenge, reason as `filter/README.md` names it, which upstream answered, which
//! predictor header reached it). One gateway per attack class; every class is a table, and
//! a failing run lists every case that went wrong, by name.
//!
//! One module per attack class; `forgery` holds what several classes forge tokens and
//! requests from.

mod algorithms;
mod duplicates;
mod forgery;
mod grpc;
mod header_parameters;
mod paths;
mod routing_header;
mod sizes;
mod token_places;
