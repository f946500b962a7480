//! Runs a DAG of jobs in dependency order with at most `jobs` at once.
//!
//! A node starts once all its dependencies finished successfully. After the
//! first failure no new node is started (the running ones finish), like
//! `nix-build` without `--keep-going`; the nodes never started are reported
//! as skipped, so the caller can say what was not built and why.
use std::sync::{mpsc, Mutex};

/// The outcome of a run over the whole graph.
#[derive(Debug)]
pub struct ScheduleOutcome<T, E> {
    /// Per node: `Some(Ok)` built, `Some(Err)` failed, `None` never started.
    pub results: Vec<Option<Result<T, E>>>,
}

impl<T, E> ScheduleOutcome<T, E> {
    /// The first failure in node order, if any.
    pub fn first_error(&self) -> Option<(usize, &E)> {
        self.results.iter().enumerate().find_map(|(i, r)| match r {
            Some(Err(e)) => Some((i, e)),
            _ => None,
        })
    }
}

/// Runs `work(node, deps_outputs)` for every node of the graph `deps`
/// (`deps[i]` lists the nodes `i` depends on; the graph must be acyclic,
/// which the caller has checked). At most `jobs` (≥ 1) run at once.
pub fn run_dag<T, E, F>(deps: &[Vec<usize>], jobs: usize, work: F) -> ScheduleOutcome<T, E>
where
    T: Clone + Send + Sync,
    E: Send,
    F: Fn(usize, Vec<T>) -> Result<T, E> + Sync,
{
    let n = deps.len();
    let jobs = jobs.max(1);
    let mut results: Vec<Option<Result<T, E>>> = (0..n).map(|_| None).collect();
    let mut waiting_on: Vec<usize> = deps.iter().map(|d| d.len()).collect();
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    for (node, ds) in deps.iter().enumerate() {
        for &d in ds {
            dependents[d].push(node);
        }
    }
    let mut ready: Vec<usize> = (0..n).rev().filter(|&i| waiting_on[i] == 0).collect();
    let mut running = 0usize;
    let mut failed = false;
    let work = &work;

    // A fixed pool of workers: a no-op build of many cached nodes must not
    // pay a thread per node.
    let (job_tx, job_rx) = mpsc::channel::<(usize, Vec<T>)>();
    let job_rx = Mutex::new(job_rx);
    let (done_tx, done_rx) = mpsc::channel::<(usize, Result<T, E>)>();
    std::thread::scope(|scope| {
        for _ in 0..jobs.min(n) {
            let (job_rx, done_tx) = (&job_rx, done_tx.clone());
            scope.spawn(move || loop {
                // The receiver ends when the main loop drops the sender.
                let next = job_rx.lock().unwrap_or_else(|p| p.into_inner()).recv();
                let Ok((node, inputs)) = next else { break };
                let _ = done_tx.send((node, work(node, inputs)));
            });
        }
        drop(done_tx);
        loop {
            while !failed && running < jobs {
                let Some(node) = ready.pop() else { break };
                let inputs: Vec<T> = deps[node]
                    .iter()
                    .map(|&d| match &results[d] {
                        Some(Ok(value)) => value.clone(),
                        // A node is only ready once every dependency succeeded.
                        _ => unreachable!("dependency {d} of ready node {node} has no output"),
                    })
                    .collect();
                if job_tx.send((node, inputs)).is_err() {
                    break;
                }
                running += 1;
            }
            if running == 0 {
                break;
            }
            // Every job sent is answered before its worker takes another.
            let Ok((node, result)) = done_rx.recv() else {
                break;
            };
            running -= 1;
            match &result {
                Ok(_) => {
                    for &dependent in &dependents[node] {
                        waiting_on[dependent] -= 1;
                        if waiting_on[dependent] == 0 {
                            ready.push(dependent);
                        }
                    }
                }
                Err(_) => failed = true,
            }
            results[node] = Some(result);
        }
        drop(job_tx);
    });
    ScheduleOutcome { results }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Mutex;

    #[test]
    fn runs_dependencies_before_dependents_and_passes_their_outputs() {
        // 0 ← 1 ← 3, 0 ← 2 ← 3
        let deps = vec![vec![], vec![0], vec![0], vec![1, 2]];
        let order = Mutex::new(Vec::new());
        let outcome = run_dag::<u32, (), _>(&deps, 2, |node, inputs| {
            order.lock().unwrap().push(node);
            Ok(1 + inputs.iter().sum::<u32>())
        });
        let values: Vec<u32> = outcome
            .results
            .into_iter()
            .map(|r| r.unwrap().unwrap())
            .collect();
        assert_eq!(values, vec![1, 2, 2, 5]);
        let order = order.into_inner().unwrap();
        assert_eq!(order[0], 0);
        assert_eq!(order[3], 3);
    }

    #[test]
    fn never_runs_more_than_jobs_at_once() {
        let deps: Vec<Vec<usize>> = (0..16).map(|_| vec![]).collect();
        let now = AtomicUsize::new(0);
        let peak = AtomicUsize::new(0);
        run_dag::<(), (), _>(&deps, 3, |_, _| {
            let current = now.fetch_add(1, Ordering::SeqCst) + 1;
            peak.fetch_max(current, Ordering::SeqCst);
            std::thread::sleep(std::time::Duration::from_millis(5));
            now.fetch_sub(1, Ordering::SeqCst);
            Ok(())
        });
        let peak = peak.load(Ordering::SeqCst);
        assert!((1..=3).contains(&peak), "peak concurrency {peak}");
    }

    #[test]
    fn a_failure_skips_dependents_and_starts_nothing_new() {
        let deps = vec![vec![], vec![0], vec![1]];
        let outcome =
            run_dag::<(), &str, _>(
                &deps,
                1,
                |node, _| if node == 0 { Err("boom") } else { Ok(()) },
            );
        assert!(matches!(outcome.results[0], Some(Err("boom"))));
        assert!(outcome.results[1].is_none());
        assert!(outcome.results[2].is_none());
        assert_eq!(outcome.first_error().map(|(i, _)| i), Some(0));
    }
}
