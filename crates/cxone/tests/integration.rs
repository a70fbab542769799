//! Integration tests of the CXone client against the CXone emulator over real HTTP.
