// Shared with the chaos scenarios (they cannot import from test/): the receiver lives in src/bench.
export * from '../../src/bench/json-receiver.js';
