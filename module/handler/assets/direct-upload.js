// Placeholder: the dependency-free browser client is written next.
export {};
