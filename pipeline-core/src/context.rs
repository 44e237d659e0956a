//! A value shared by every node of a run: configuration, a connection pool, a model.
//!
//! Set it with [`Pipeline::with_context`](crate::Pipeline::with_context); a node reads it in
//! its `setup`, once per worker, never per item.

use std::any::{Any, type_name};
use std::sync::Arc;

use crate::error::BoxError;

/// The run's shared value, if any.
#[derive(Clone, Default)]
pub struct Context {
    value: Option<Arc<dyn Any + Send + Sync>>,
    type_name: &'static str,
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context")
            .field("type", &self.value.as_ref().map(|_| self.type_name))
            .finish()
    }
}

impl Context {
    pub(crate) fn new<C: Send + Sync + 'static>(value: C) -> Self {
        Context {
            value: Some(Arc::new(value)),
            type_name: type_name::<C>(),
        }
    }

    /// The shared value, if the pipeline has one of type `C`.
    pub fn get<C: Send + Sync + 'static>(&self) -> Option<Arc<C>> {
        self.value.clone()?.downcast::<C>().ok()
    }

    /// The shared value, or an error that says which type was wanted and which one is there.
    pub fn require<C: Send + Sync + 'static>(&self) -> Result<Arc<C>, BoxError> {
        self.get::<C>().ok_or_else(|| {
            let have = if self.value.is_some() { self.type_name } else { "none" };
            format!("needs a context of type `{}`, but the pipeline's context is `{have}` (see `Pipeline::with_context`)", type_name::<C>())
                .into()
        })
    }
}
