//! Fusion: a cheap synchronous stage or sink runs inside the node that feeds it, with no
//! channel between them.
//!
//! A channel hop per edge costs more than an identity stage's work, so a chain of cheap
//! stages wired as separate tasks is slower than one loop. Instead, a stage that could run
//! inline (synchronous, one worker, one input, no retry, timeout or dead-letter node, no
//! `after`) offers itself to the node that feeds it once its setup is done. That node
//! adopts it at its first send: from then on its outlet hands each batch straight to the
//! stage, which processes it and passes its output on, possibly to a stage it adopted in
//! turn. A chain of cheap stages thus runs as one loop on one thread, and each stage still
//! keeps its own counts. A synchronous sink at the end of the chain runs in it too, so a
//! linear pipeline of cheap nodes wakes no thread per batch.
//!
//! The channel stays wired. When an item proves slow (see `LatencySampler`) or the stage
//! panics, the stage goes back to its own task with the rest of the batch, and the feeding
//! node uses the channel from then on: slow stages overlap again, each on its own thread.
//! At end of stream the adopter drops what it adopted, which gives it back, and every stage
//! ends as usual from its own task.
//!
//! A node that fans out adopts each of its targets that offers itself, and runs them one
//! after the other on the same batch (copies of it): a diamond's branches run on the
//! source's thread. A zip node offers itself on all its inputs at once and runs inside
//! whichever of its feeding nodes completes a tuple (see `inlet::zip`), so the whole
//! diamond runs on that thread. Two kernels then save the passes node by node: a chain of
//! maps runs each item through all its stages at once ([`chain`]), and a diamond of maps
//! each item through all its branches and into its zip node ([`fork`]).
//!
//! A stage that may block is only adopted by a node that runs on a thread of its own, so a
//! blocking stage never ends up on the async workers.

pub(crate) mod chain;
pub(crate) mod fork;
