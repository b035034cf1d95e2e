// Unit tests use fakes and in-process servers only, so one that runs this long is stuck, not slow: fail it early.
// Integration, workflow and contract tests keep the 60 s in jest.config.js; a test may still ask for more itself.
jest.setTimeout(15_000);
