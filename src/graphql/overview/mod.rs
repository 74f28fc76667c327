pub mod resolvers;
