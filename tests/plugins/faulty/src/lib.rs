//! A plugin that misbehaves on purpose, for the host's tests: a node that fails, one that panics,
//! one that runs slowly until cancelled, one that counts its executions, one that is not
//! deterministic, and one that emits a preview; and for streams, a counting stream producer, an
//! accumulating stream consumer and a pass-through that counts its calls.
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

/// A stream of numbered items: item `i` of the sequence is a row of `width` copies of `i`.
pub struct StreamCount;
impl Node for StreamCount {
    fn spec() -> NodeSpec {
        NodeSpec::new("test.stream_count", "Counting stream")
            .category("Test")
            .doc(
                "Produces `items` rows in chunks of `chunk_items`; every element of row `i` is \
                 `i`, the row's position in the whole sequence (taken from the host's chunk \
                 offset). Can fail at a chunk, and sleep per chunk (for cancellation).",
            )
            .optional_input(
                "x",
                "any",
                "ignored (lets tests put it inside another stream)",
            )
            .stream_output("values", "Tensor", "[chunk items, width] float32")
            .output("chunk", "int", "the chunk's index")
            .param(
                ParamSpec::int("items", 10)
                    .range(0.0, 1e9)
                    .doc("items in all"),
            )
            .param(
                ParamSpec::int("chunk_items", 4)
                    .range(1.0, 1e9)
                    .doc("items per chunk"),
            )
            .param(
                ParamSpec::int("width", 3)
                    .range(1.0, 1e9)
                    .doc("values per item"),
            )
            .param(
                ParamSpec::int("fail_at_chunk", -1)
                    .min(-1.0)
                    .doc("fail on this chunk (-1: never)"),
            )
            .param(
                ParamSpec::int("delay_ms", 0)
                    .range(0.0, 1e4)
                    .doc("sleep per chunk"),
            )
            .param(ParamSpec::bool("report_total", true).doc("tell the host the length"))
            .param(ParamSpec::int("image_size", 0).range(0.0, 4096.0).doc(
                "> 0: items are grey RGB images [chunk items, 3, size, size] instead of \
                         rows, item `i` of level `(i mod 16) / 7.5 - 1` (8-bit: `17 * (i mod 16)`)",
            ))
    }
    fn create() -> Result<Self, NodeError> {
        Ok(StreamCount)
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let Some(chunk) = ctx.chunk() else {
            node_bail!("test.stream_count must run as a stream");
        };
        let items = ctx.param_i64("items")? as u64;
        let per = ctx.param_i64("chunk_items")? as u64;
        let width = ctx.param_i64("width")? as usize;
        if ctx.param_i64("fail_at_chunk")? == chunk.index as i64 {
            node_bail!("deliberate failure at chunk {}", chunk.index);
        }
        std::thread::sleep(std::time::Duration::from_millis(
            ctx.param_i64("delay_ms")? as u64
        ));
        ctx.check_cancelled()?;
        if chunk.offset != (chunk.index * per).min(items) {
            node_bail!(
                "chunk {} starts at offset {}, expected {}",
                chunk.index,
                chunk.offset,
                chunk.index * per
            );
        }
        let n = per.min(items.saturating_sub(chunk.offset)) as usize;
        let size = ctx.param_i64("image_size")? as usize;
        if size > 0 {
            let out = ctx.output_f32("values", &[n, 3, size, size])?;
            for (i, image) in out.chunks_exact_mut(3 * size * size).enumerate() {
                let level = ((chunk.offset as usize + i) % 16) as f32;
                image.fill(level / 7.5 - 1.0);
            }
        } else {
            let out = ctx.output_f32("values", &[n, width])?;
            for (i, row) in out.chunks_exact_mut(width).enumerate() {
                row.fill((chunk.offset as usize + i) as f32);
            }
        }
        ctx.set_output_i64("chunk", chunk.index as i64)?;
        if ctx.param_bool("report_total")? {
            ctx.set_stream_total(items);
        }
        ctx.set_stream_more(chunk.offset + (n as u64) < items);
        Ok(())
    }
}

/// What a [`StreamSink`] has seen of its current sequence.
#[derive(Default)]
struct SinkState {
    sum: f64,
    items: u64,
    chunks: u64,
    log: Vec<String>,
    partial: Option<std::path::PathBuf>,
}

/// Consumes a stream: sums every element, records each chunk it saw, and (with `path`) writes a
/// partial file that becomes `path` at the end and is removed on abort.
#[derive(Default)]
pub struct StreamSink {
    state: Option<SinkState>,
}

impl Drop for StreamSink {
    fn drop(&mut self) {
        if let Some(p) = self.state.take().and_then(|s| s.partial) {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Node for StreamSink {
    fn spec() -> NodeSpec {
        NodeSpec::new("test.stream_sink", "Stream sink")
            .category("Test")
            .doc(
                "Sums a stream. Writes `<path>.partial` while streaming, renames it to `path` \
                 on the last chunk, removes it and writes `<path>.aborted` on an abort.",
            )
            .side_effect()
            .stream_input("x", "Tensor", "the stream")
            .optional_input("extra", "any", "ignored")
            .output("sum", "float", "sum of every element of every chunk")
            .output("items", "int", "items (rows) seen")
            .output("chunks", "int", "chunks seen")
            .output(
                "log",
                "string",
                "`index:offset:rows[:last]` per chunk, `;`-separated",
            )
            .param(ParamSpec::output_path("path", "").doc("marker file (empty: none)"))
            .param(
                ParamSpec::int("fail_at_chunk", -1)
                    .min(-1.0)
                    .doc("fail on this chunk (-1: never)"),
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(StreamSink::default())
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        let path = ctx.param_str("path")?;
        let chunk = ctx.chunk().unwrap_or(ChunkInfo {
            index: 0,
            offset: 0,
            total: None,
            last: true,
            abort: false,
        });
        if chunk.abort {
            if let Some(p) = self.state.take().and_then(|s| s.partial) {
                let _ = std::fs::remove_file(p);
                std::fs::write(format!("{path}.aborted"), chunk.index.to_string())?;
            }
            return Ok(());
        }
        if chunk.index == 0 {
            // A new sequence; whatever was left of an old one goes.
            drop(
                self.state
                    .take()
                    .and_then(|s| s.partial)
                    .map(std::fs::remove_file),
            );
            let partial =
                (!path.is_empty()).then(|| std::path::PathBuf::from(format!("{path}.partial")));
            if let Some(p) = &partial {
                std::fs::write(p, "")?;
            }
            self.state = Some(SinkState {
                partial,
                ..SinkState::default()
            });
        }
        let Some(state) = self.state.as_mut() else {
            node_bail!("chunk {} arrived but no sequence was started", chunk.index);
        };
        if chunk.index != state.chunks {
            node_bail!("chunk {} arrived, expected {}", chunk.index, state.chunks);
        }
        if ctx.param_i64("fail_at_chunk")? == chunk.index as i64 {
            node_bail!("deliberate sink failure at chunk {}", chunk.index);
        }
        let x = ctx.input_tensor("x")?;
        let rows = x.shape().first().copied().unwrap_or(1) as u64;
        state.sum += x.to_f64_vec()?.iter().sum::<f64>();
        state.items += rows;
        state.chunks += 1;
        state.log.push(format!(
            "{}:{}:{}{}",
            chunk.index,
            chunk.offset,
            rows,
            if chunk.last { ":last" } else { "" }
        ));
        if !chunk.last {
            return Ok(());
        }
        let Some(done) = self.state.take() else {
            node_bail!("no sequence");
        };
        if let Some(p) = &done.partial {
            std::fs::rename(p, &path)?;
        }
        ctx.set_output_f64("sum", done.sum)?;
        ctx.set_output_i64("items", done.items as i64)?;
        ctx.set_output_i64("chunks", done.chunks as i64)?;
        ctx.set_output_str("log", &done.log.join(";"))
    }
}

/// Passes its input through and counts its own calls (per instance, so tests running in
/// parallel do not disturb each other).
#[derive(Default)]
pub struct Tally {
    calls: i64,
}
impl Node for Tally {
    fn spec() -> NodeSpec {
        NodeSpec::new("test.tally", "Tally")
            .category("Test")
            .doc("Passes `x` through; `calls` counts this instance's executions.")
            .input("x", "any", "anything")
            .output("y", "any", "x")
            .output(
                "calls",
                "int",
                "executions of this instance, this one included",
            )
    }
    fn create() -> Result<Self, NodeError> {
        Ok(Tally::default())
    }
    fn execute(&mut self, ctx: &mut Context) -> NodeResult {
        self.calls += 1;
        ctx.pass_through("y", "x")?;
        ctx.set_output_i64("calls", self.calls)
    }
}

stylegraph_abi::export_plugin!(
    id: "test",
    version: "0.0.1",
    description: "misbehaving nodes for the host's tests",
    nodes: [Fail, Panic, Slow, Count, Random, Preview, StreamCount, StreamSink, Tally],
);
