pub mod resolvers;
pub mod types;
