"""Files into records: store, unpack, analyse, in a child process with limits."""
