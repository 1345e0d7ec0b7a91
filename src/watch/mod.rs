pub mod sync;
pub mod events;
pub mod rules;
