//! ferry-store: the content-addressed store.
