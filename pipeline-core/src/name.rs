//! Node names. The runtime keeps a node's name as `&'static str` (reports, metrics labels
//! and log spans hold it for the whole run and beyond); a name known only at run time (a
//! graph built from a spec file) is interned here, once per distinct name, so that building
//! the same graph again, as a service that reloads its spec does, takes no more memory.

use std::collections::HashSet;
use std::sync::{Mutex, OnceLock};

/// `name` as a `&'static str`: the same one for every call with the same text.
pub fn intern(name: &str) -> &'static str {
    static NAMES: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let mut names = NAMES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(&known) = names.get(name) {
        return known;
    }
    let leaked: &'static str = Box::leak(name.to_owned().into_boxed_str());
    names.insert(leaked);
    leaked
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_same_name_is_interned_once() {
        let a = super::intern(&String::from("frontier"));
        let b = super::intern("frontier");
        assert!(std::ptr::eq(a, b));
        assert_eq!(a, "frontier");
    }
}
