//! The typed glue `pipeline!` expands to. Not for direct use.
//!
//! Each check is a trait bound whose `on_unimplemented` message names the nodes: the macro
//! passes marker types named after them (`Name`, `From`, `To`), and emits each call with the
//! span of the user's tokens, so a wrong edge fails with one error on that edge. The checks
//! are also the conversions: an edge's sender is retyped by the same bound that checks it,
//! so a failed check does not cascade into errors inside the generated code.
//!
//! The modules follow the expansion: each node is checked where it is bound (`node`), its
//! input edges are made (`input`), every edge is checked and typed (`edge`), each node's
//! outlet is made (`outlet`), and the node is added with its error handling (`errors`),
//! across processes if the pipeline is distributed (`remote`).

mod edge;
mod errors;
mod input;
mod node;
mod outlet;
mod remote;

pub use edge::*;
pub use errors::*;
pub use input::*;
pub use node::*;
pub use outlet::*;
pub use remote::*;

/// The traits whose methods the expansion calls, in scope without their names.
pub mod methods {
    pub use super::{
        CheckSink as _, CheckSource as _, CheckStage as _, OpenSink as _, OpenSource as _,
        OpenStage as _, OpenZipInputs2 as _, OpenZipInputs3 as _, OpenZipInputs4 as _,
        OpenZipInputs5 as _, OpenZipInputs6 as _, OpenZipInputs7 as _, OpenZipInputs8 as _,
        ZipInputs2 as _, ZipInputs3 as _, ZipInputs4 as _, ZipInputs5 as _, ZipInputs6 as _,
        ZipInputs7 as _, ZipInputs8 as _,
    };
}
