pub mod loaders;
pub mod resolvers;
pub mod types;
