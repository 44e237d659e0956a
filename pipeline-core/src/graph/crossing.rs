//! A graph split over processes (feature `nats`): how the items of each type travel as
//! bytes. The builder holds items by type, erased, so it cannot ask for serde on the type
//! of just the edges that cross; the types that may cross are registered instead, each
//! with the one function that bridges an edge of that type.

use std::any::TypeId;
use std::collections::HashMap;

use super::entry::{ItemType, Sender};
use crate::run::Builder;

/// Turns an edge's sender into the one its sending node uses: the edge itself, or a bridge
/// to another process when the plan hosts only one end here (`Builder::across`).
type Across = fn(&mut Builder, &'static str, &'static str, Sender) -> Sender;

/// The item types that may cross processes, by type (none without the `nats` feature).
#[derive(Default, Clone)]
pub(crate) struct Crossings(HashMap<TypeId, Across>);

impl Crossings {
    #[cfg(feature = "nats")]
    pub(crate) fn add<T>(&mut self)
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
    {
        self.0.insert(TypeId::of::<T>(), across::<T>);
    }

    #[cfg(all(feature = "nats", feature = "spec"))]
    pub(crate) fn extend(&mut self, other: &Crossings) {
        self.0.extend(other.0.iter().map(|(k, v)| (*k, *v)));
    }

    /// How items of type `item` cross, if they may.
    pub(crate) fn of(&self, item: ItemType) -> Option<Across> {
        self.0.get(&item.id).copied()
    }
}

#[cfg(feature = "nats")]
fn across<T>(builder: &mut Builder, from: &'static str, to: &'static str, sender: Sender) -> Sender
where
    T: serde::Serialize + serde::de::DeserializeOwned + Send + 'static,
{
    Box::new(builder.across(from, to, super::entry::unbox::<T>(sender)))
}
