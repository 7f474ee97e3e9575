//! One read of the log serves every reader waiting for one: readers (an API query, the
//! page) hand in what they gather (`Accumulate`); the first becomes the scanner and feeds
//! each line to every gatherer queued when its pass starts; readers that arrive during a
//! pass are served together by the next. Twenty concurrent requests cost one or two passes
//! over the file instead of twenty, and memory is what the gatherers keep. Owns the queue
//! and the hand-over; must not know how the file is read (`log` passes the pass in).

use std::any::Any;
use std::sync::Mutex;

use super::lines::LogLine;

/// What a reader gathers from the log's lines, given oldest first.
pub trait Accumulate: Send + 'static {
    fn offer(&mut self, line: &LogLine<'_>);
    fn into_any(self: Box<Self>) -> Box<dyn Any>;
}

/// A pass over the log: feeds every line to `each`, returns the lines that are not events.
pub type Pass<'a> = &'a dyn Fn(&mut dyn FnMut(&LogLine<'_>)) -> std::io::Result<usize>;

/// What a reader is called back with: its gatherer after the pass, and the count of lines
/// that are not events; or the pass's error.
pub type Gathered = std::io::Result<(Box<dyn Accumulate>, usize)>;
/// The call back, from the thread that ran the pass.
pub type Done = Box<dyn FnOnce(Gathered) + Send>;

/// The queue of readers and whether a pass is running.
#[derive(Debug, Default)]
pub struct SharedScan {
    state: Mutex<QueueState>,
}

#[derive(Default)]
struct QueueState {
    queue: Vec<Ticket>,
    scanning: bool,
}

impl std::fmt::Debug for QueueState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueState")
            .field("queued", &self.queue.len())
            .field("scanning", &self.scanning)
            .finish()
    }
}

struct Ticket {
    gatherer: Box<dyn Accumulate>,
    done: Done,
}

impl SharedScan {
    /// Queues `gatherer` for the next pass; `done` gets it back. The caller that finds no
    /// pass running runs the passes (`pass`) until no reader waits, on its own thread;
    /// the others return at once, and a thread of the pool is not held while they wait.
    pub fn submit(&self, gatherer: Box<dyn Accumulate>, done: Done, pass: Pass<'_>) {
        let lead = {
            let mut state = crate::sync::lock(&self.state);
            state.queue.push(Ticket { gatherer, done });
            !std::mem::replace(&mut state.scanning, true)
        };
        if lead {
            self.lead(pass);
        }
    }

    /// `submit`, waiting for the result on this thread.
    pub fn gather<A: Accumulate>(
        &self,
        gatherer: A,
        pass: Pass<'_>,
    ) -> std::io::Result<(A, usize)> {
        let (sender, receiver) = std::sync::mpsc::channel();
        let done: Done = Box::new(move |gathered| {
            let _ = sender.send(gathered);
        });
        self.submit(Box::new(gatherer), done, pass);
        let (gathered, skipped) = receiver.recv().map_err(std::io::Error::other)??;
        Ok((unbox(gathered)?, skipped))
    }

    /// Runs passes until no reader waits.
    fn lead(&self, pass: Pass<'_>) {
        loop {
            let batch = {
                let mut state = crate::sync::lock(&self.state);
                if state.queue.is_empty() {
                    state.scanning = false;
                    return;
                }
                std::mem::take(&mut state.queue)
            };
            run_batch(batch, pass);
        }
    }
}

/// A reader's own gatherer back from the box it travelled in.
pub fn unbox<A: Accumulate>(gathered: Box<dyn Accumulate>) -> std::io::Result<A> {
    gathered
        .into_any()
        .downcast::<A>()
        .map(|a| *a)
        .map_err(|_| std::io::Error::other("a reader got another reader's result"))
}

/// One pass for every ticket of the batch; each gets its gatherer back, or the error.
fn run_batch(batch: Vec<Ticket>, pass: Pass<'_>) {
    let (mut gatherers, dones): (Vec<Box<dyn Accumulate>>, Vec<Done>) =
        batch.into_iter().map(|t| (t.gatherer, t.done)).unzip();
    let result = pass(&mut |line| {
        for gatherer in &mut gatherers {
            gatherer.offer(line);
        }
    });
    for (gatherer, done) in gatherers.into_iter().zip(dones) {
        done(match &result {
            Ok(skipped) => Ok((gatherer, *skipped)),
            Err(e) => Err(std::io::Error::new(e.kind(), e.to_string())),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    #[derive(Default)]
    struct Count(usize);

    impl Accumulate for Count {
        fn offer(&mut self, _line: &LogLine<'_>) {
            self.0 += 1;
        }
        fn into_any(self: Box<Self>) -> Box<dyn Any> {
            self
        }
    }

    #[test]
    fn concurrent_readers_share_passes_and_each_gets_every_line() {
        let scan = Arc::new(SharedScan::default());
        let passes = Arc::new(AtomicUsize::new(0));
        let text = b"{\"time\":1,\"type\":\"reboot\"}\n{\"time\":2,\"type\":\"reboot\"}\nbad\n";
        let handles: Vec<_> = (0..20)
            .map(|_| {
                let (scan, passes) = (scan.clone(), passes.clone());
                std::thread::spawn(move || {
                    let pass = |each: &mut dyn FnMut(&LogLine<'_>)| {
                        passes.fetch_add(1, Ordering::SeqCst);
                        std::thread::sleep(std::time::Duration::from_millis(50));
                        super::super::lines::for_each_event(&text[..], |line| {
                            each(line);
                            Ok(())
                        })
                    };
                    scan.gather(Count::default(), &pass).expect("gathered")
                })
            })
            .collect();
        for handle in handles {
            let (count, skipped) = handle.join().expect("reader");
            assert_eq!((count.0, skipped), (2, 1));
        }
        let passes = passes.load(Ordering::SeqCst);
        assert!(passes < 20, "{passes} passes for 20 readers");
    }
}
