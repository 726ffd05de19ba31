// Shared with the chaos scenarios: the receiver lives in bench/, beside them.
export * from '../../bench/json-receiver.js';
