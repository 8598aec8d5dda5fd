//! The sliding window: a ring of sub-buckets.
//!
//! A window of length W is cut into `BUCKETS` buckets of width
//! w = ⌈W / BUCKETS⌉, numbered from the Unix epoch, and the counter keeps the
//! newest `BUCKETS + 1` of them. The usage at time t is the sum of those
//! buckets, which hold every event of (t − W, t] and possibly some up to w
//! older. So the error is one-sided: within any interval of length W at
//! most `max` is ever admitted (no burst at a window edge), and an event
//! is forgotten between W and W + w after it happened, never earlier. A
//! refused check learns when enough buckets will have left for it to pass.

/// Buckets per window: an event is remembered at most W/20 (5 %) too long.
pub const BUCKETS: u64 = 20;
const SLOTS: usize = BUCKETS as usize + 1;

/// Bucket width for a window.
pub fn width_ms(window_ms: u64) -> u64 {
    window_ms.div_ceil(BUCKETS).max(1)
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Window {
    /// The newest bucket number held.
    head: u64,
    /// Bucket n is in slot n % SLOTS, for n in head − BUCKETS ..= head.
    slots: [u64; SLOTS],
}

impl Window {
    /// Moves the window to `bucket`, dropping buckets that left it. A clock
    /// that went back counts into the newest bucket held.
    pub fn advance(&mut self, bucket: u64) {
        if bucket <= self.head {
            return;
        }
        let gap = bucket - self.head;
        if gap >= SLOTS as u64 {
            self.slots = [0; SLOTS];
        } else {
            for n in self.head + 1..=bucket {
                self.slots[(n % SLOTS as u64) as usize] = 0;
            }
        }
        self.head = bucket;
    }

    pub fn head(&self) -> u64 {
        self.head
    }

    pub fn total(&self) -> u64 {
        self.slots
            .iter()
            .fold(0u64, |sum, n| sum.saturating_add(*n))
    }

    fn holds(&self, bucket: u64) -> bool {
        bucket <= self.head && bucket + BUCKETS >= self.head
    }

    /// Adds `amount` at `bucket` (the head, or an older bucket still held;
    /// a newer one moves the window first).
    pub fn add(&mut self, bucket: u64, amount: u64) {
        self.advance(bucket);
        if self.holds(bucket) {
            let slot = &mut self.slots[(bucket % SLOTS as u64) as usize];
            *slot = slot.saturating_add(amount);
        }
    }

    /// Takes back `amount` added at `bucket`, if that bucket is still held.
    pub fn sub(&mut self, bucket: u64, amount: u64) {
        if self.holds(bucket) {
            let slot = &mut self.slots[(bucket % SLOTS as u64) as usize];
            *slot = slot.saturating_sub(amount);
        }
    }

    /// The non-empty buckets, oldest first: `(bucket, amount)`.
    pub fn buckets(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        let oldest = self.head.saturating_sub(BUCKETS);
        (oldest..=self.head)
            .map(|n| (n, self.slots[(n % SLOTS as u64) as usize]))
            .filter(|(_, amount)| *amount > 0)
    }

    /// Whether nothing is held as of `bucket`.
    pub fn idle_at(&self, bucket: u64) -> bool {
        bucket > self.head + BUCKETS || self.slots.iter().all(|n| *n == 0)
    }

    pub fn clear(&mut self) {
        self.slots = [0; SLOTS];
    }
}

/// When, in milliseconds from `now_ms`, enough of `windows`' buckets (read
/// together: this replica's and the others') will have left for `needed`
/// to be freed; `None` if even all of them are not enough.
pub fn retry_after_ms(windows: &[&Window], needed: u64, width_ms: u64, now_ms: u64) -> Option<u64> {
    let head = windows.iter().map(|w| w.head).max()?;
    let mut freed = 0u64;
    for bucket in head.saturating_sub(BUCKETS)..=head {
        for window in windows {
            if window.holds(bucket) {
                freed = freed.saturating_add(window.slots[(bucket % SLOTS as u64) as usize]);
            }
        }
        if freed >= needed {
            // Bucket n is held until the head reaches n + SLOTS.
            let leaves_at = (bucket + SLOTS as u64).saturating_mul(width_ms);
            return Some(leaves_at.saturating_sub(now_ms));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_event_is_remembered_for_at_least_the_window_and_at_most_one_bucket_more() {
        let window_ms = 60_000;
        let width = width_ms(window_ms);
        assert_eq!(width, 3_000);
        for at in [0, 1, 2_999, 3_000, 59_999, 123_456] {
            let mut w = Window::default();
            w.add(at / width, 1);
            // Still counted just before `at + window`.
            let before = at + window_ms - 1;
            w.advance(before / width);
            assert_eq!(w.total(), 1, "event at {at} forgotten by {before}");
            // Gone by `at + window + width`.
            let mut later = w.clone();
            later.advance((at + window_ms + width) / width);
            assert_eq!(
                later.total(),
                0,
                "event at {at} still counted a bucket late"
            );
        }
    }

    #[test]
    fn retry_after_names_the_moment_the_needed_bucket_leaves() {
        let width = 3_000;
        let mut w = Window::default();
        w.add(0, 5); // at t in [0, 3 s)
        w.add(2, 5); // at t in [6 s, 9 s)
        let now = 10_000;
        w.advance(now / width);
        // One unit frees when bucket 0 leaves: at (0 + 21) * 3 s = 63 s.
        assert_eq!(retry_after_ms(&[&w], 1, width, now), Some(53_000));
        // Six need bucket 2 as well: at 23 * 3 s = 69 s.
        assert_eq!(retry_after_ms(&[&w], 6, width, now), Some(59_000));
        assert_eq!(retry_after_ms(&[&w], 11, width, now), None);
    }

    #[test]
    fn a_clock_that_goes_back_counts_into_the_newest_bucket() {
        let mut w = Window::default();
        w.add(10, 1);
        w.add(4, 1);
        assert_eq!(w.total(), 2);
        w.sub(10, 1);
        assert_eq!(w.total(), 1);
    }

    #[test]
    fn taking_back_an_expired_bucket_changes_nothing() {
        let mut w = Window::default();
        w.add(0, 3);
        w.advance(100);
        w.add(100, 2);
        w.sub(0, 3);
        assert_eq!(w.total(), 2);
    }
}
