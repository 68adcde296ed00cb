//! A plugin that misbehaves on purpose, for the host's tests: a node that fails, one that panics,
//! one that runs slowly until cancelled, one that counts its executions, one that is not
//! deterministic, and one that emits a preview.
//! It is built with the workspace but never installed.

use std::sync::atomic::{AtomicI64, Ordering};
use stylegraph_abi::prelude::*;

/// Always fails with a message.
pub struct Fail;
impl Node for Fail {
    fn spec() -> NodeSpec {
        NodeSpec::new("test.fail", "Fail")
            .category("Test")
            .doc("Always fails (for tests of error reporting).")
            .optional_input("x", "any", "ignored")
            .output("y", "float", "never produced")
            .param(ParamSpec::string("message", "deliberate failure").doc("the error message"))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Fail)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        Err(NodeError::new(ctx.param_str("message")?))
    }
}

/// Panics (the SDK must turn this into an error; the host must survive).
pub struct Panic;
impl Node for Panic {
    fn spec() -> NodeSpec {
        NodeSpec::new("test.panic", "Panic")
            .category("Test")
            .doc("Panics inside execute (for tests of the panic barrier).")
            .optional_input("x", "any", "ignored")
            .output("y", "float", "never produced")
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Panic)
    }
    fn execute(&mut self, _ctx: &mut Context) -> NodeResult {
        panic!("deliberate panic in test.panic");
    }
}

/// Works in small steps, reporting progress and stopping when cancelled.
pub struct Slow;
impl Node for Slow {
    fn spec() -> NodeSpec {
        NodeSpec::new("test.slow", "Slow")
            .category("Test")
            .doc("Sleeps `steps` x `step_ms`, reporting progress and honouring cancellation.")
            .optional_input("x", "any", "ignored")
            .output("steps_done", "int", "steps completed")
            .param(
                ParamSpec::int("steps", 100)
                    .range(0.0, 1e6)
                    .doc("number of steps"),
            )
            .param(
                ParamSpec::int("step_ms", 10)
                    .range(0.0, 1e4)
                    .doc("milliseconds per step"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Slow)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let steps = ctx.param_i64("steps")?;
        let ms = ctx.param_i64("step_ms")? as u64;
        for i in 0..steps {
            ctx.check_cancelled()?;
            std::thread::sleep(std::time::Duration::from_millis(ms));
            ctx.progress((i + 1) as f64 / steps as f64, "working");
        }
        ctx.set_output_i64("steps_done", steps)
    }
}

static EXECUTIONS: AtomicI64 = AtomicI64::new(0);

/// Counts executions across the process; passes a value through.
pub struct Count;
impl Node for Count {
    fn spec() -> NodeSpec {
        NodeSpec::new("test.count", "Count")
            .category("Test")
            .doc("Adds `offset` to its input; outputs how many times any Count node has executed.")
            .optional_input("x", "float", "input value (0 when unconnected)")
            .output("y", "float", "x + offset")
            .output(
                "executions",
                "int",
                "process-wide execution count, including this one",
            )
            .param(ParamSpec::float("offset", 0.0).doc("added to x"))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Count)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let n = EXECUTIONS.fetch_add(1, Ordering::SeqCst) + 1;
        let x = if ctx.has_input("x") {
            ctx.input_f64("x")?
        } else {
            0.0
        };
        let y = x + ctx.param_f64("offset")?;
        ctx.set_output_f64("y", y)?;
        ctx.set_output_i64("executions", n)
    }
}

/// Returns a different value every run unless seeded.
pub struct Random;
impl Node for Random {
    fn spec() -> NodeSpec {
        NodeSpec::new("test.random", "Random")
            .category("Test")
            .doc("A value that changes every run unless `seed` >= 0 (tests the cache policy).")
            .output("value", "float", "the value")
            .param(
                ParamSpec::seed("seed", -1)
                    .range(-1.0, 1e9)
                    .doc("-1: new value every run"),
            )
            .nondeterministic()
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Random)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let seed = ctx.param_i64("seed")?;
        let v = if seed >= 0 {
            seed as f64
        } else {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos() as f64)
                .unwrap_or(0.0)
                + EXECUTIONS.fetch_add(1, Ordering::SeqCst) as f64
        };
        ctx.set_output_f64("value", v)
    }
}

/// Emits an image preview.
pub struct Preview;
impl Node for Preview {
    fn spec() -> NodeSpec {
        NodeSpec::new("test.preview", "Preview gradient")
            .category("Test")
            .doc("Makes a [1,3,8,8] gradient Image, emits it as a preview and outputs it.")
            .output("image", "Image", "the gradient")
            .side_effect()
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Preview)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let img = ctx.output_f32("image", &[1, 3, 8, 8])?;
        for (i, v) in img.iter_mut().enumerate() {
            *v = (i % 64) as f32 / 32.0 - 1.0;
        }
        ctx.preview_output("image", "gradient")
    }
}

stylegraph_abi::export_plugin!(
    id: "test",
    version: "0.0.1",
    description: "misbehaving nodes for the host's tests",
    nodes: [Fail, Panic, Slow, Count, Random, Preview],
);
