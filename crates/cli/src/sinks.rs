//! Audit sink specs to sinks; written with the run command.
