//! Ordered parallel maps over the machine's cores, for the passes a fleet makes
//! over hundreds or thousands of independent items (tenants' templates,
//! manifests, graph edges, tenants' status). It owns the splitting only: the
//! items are cut into one contiguous chunk per core, each on a scoped thread, and
//! the results come back in input order. It never reorders, shares nothing
//! mutable between chunks and does no I/O of its own.

/// `f(index, item)` for every item, on as many scoped threads as the machine has
/// cores, the results in input order. A panic in `f` is raised again here.
pub fn map_in_order<T: Sync, R: Send>(items: &[T], f: impl Fn(usize, &T) -> R + Sync) -> Vec<R> {
    let workers = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len().max(1));
    let chunk = items.len().div_ceil(workers).max(1);
    let f = &f;
    std::thread::scope(|s| {
        let parts: Vec<_> = items
            .chunks(chunk)
            .enumerate()
            .map(|(c, part)| {
                s.spawn(move || {
                    part.iter()
                        .enumerate()
                        .map(|(k, item)| f(c * chunk + k, item))
                        .collect::<Vec<R>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn results_keep_input_order_and_indices() {
        let items: Vec<u32> = (0..1001).collect();
        let out = map_in_order(&items, |i, x| (i, x * 2));
        assert_eq!(out.len(), 1001);
        assert!(
            out.iter()
                .enumerate()
                .all(|(i, &(j, y))| i == j && y == 2 * i as u32)
        );
        assert!(map_in_order(&[] as &[u32], |_, x| *x).is_empty());
        assert_eq!(map_in_order(&[7], |i, x| (i, *x)), vec![(0, 7)]);
    }
}
