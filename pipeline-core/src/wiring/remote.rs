//! Pipelines split over processes (`#![distributed]`, feature `nats`).

use crate::run::Builder;
use crate::wire::EdgeSender;

/// Holds when the `nats` feature is on; a `#![distributed]` pipeline needs it.
#[diagnostic::on_unimplemented(
    message = "`#![distributed]` pipelines need the `nats` feature of `pipeline`",
    label = "this pipeline may run split over processes",
    note = "enable it in Cargo.toml: `pipeline = {{ version = \"0.1\", features = [\"nats\"] }}`"
)]
pub trait NatsFeature {}

#[cfg(feature = "nats")]
impl NatsFeature for () {}

/// The builder of a `#![distributed(name)]` pipeline (see the `remote` module, feature `nats`).
pub fn distributed_builder<Enabled: NatsFeature>(name: &'static str) -> Builder {
    #[cfg(feature = "nats")]
    return Builder::distributed(name);
    #[cfg(not(feature = "nats"))]
    {
        let _ = name;
        Builder::new()
    }
}

/// Items of a distributed pipeline travel between processes as MessagePack.
#[cfg(feature = "nats")]
#[diagnostic::on_unimplemented(
    message = "edge `{From} => {To}` may cross processes, so its item type `{Self}` must implement serde's `Serialize` and `Deserialize`",
    label = "`{Self}` travels between processes here",
    note = "derive them: `#[derive(serde::Serialize, serde::Deserialize)]`"
)]
pub trait CrossesProcesses<From, To>: serde::Serialize + serde::de::DeserializeOwned {}

// Not recommended: an error then names this check, not serde's traits with the list of
// every type that implements them (which depends on what else is compiled in).
#[cfg(feature = "nats")]
#[diagnostic::do_not_recommend]
impl<T: serde::Serialize + serde::de::DeserializeOwned, From, To> CrossesProcesses<From, To> for T {}

/// Without the `nats` feature nothing crosses processes (the builder already said why).
#[cfg(not(feature = "nats"))]
pub trait CrossesProcesses<From, To> {}

#[cfg(not(feature = "nats"))]
impl<T, From, To> CrossesProcesses<From, To> for T {}

/// The sender for the edge `from => to` of a distributed pipeline: the edge itself, or a
/// bridge to another process when the plan hosts only one end here.
pub fn across<From, To, T: CrossesProcesses<From, To> + Send + 'static>(
    builder: &mut Builder,
    from: &'static str,
    to: &'static str,
    tx: EdgeSender<T>,
) -> EdgeSender<T> {
    #[cfg(feature = "nats")]
    return builder.across(from, to, tx);
    #[cfg(not(feature = "nats"))]
    {
        let _ = (builder, from, to);
        tx
    }
}
