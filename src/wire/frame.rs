//! A frame in a buffer with headroom, so that encapsulation can grow it in place.

/// `head..head + len` clamped into a buffer of `buf_len` bytes: how every frame view and
/// descriptor is read, so a bad descriptor can never index out of its buffer.
#[inline]
pub fn span(buf_len: usize, head: usize, len: usize) -> core::ops::Range<usize> {
    let head = head.min(buf_len);
    head..head + len.min(buf_len - head)
}

/// A packet occupying `buf[head..head + len]`.
pub struct Frame<'a> {
    buf: &'a mut [u8],
    head: usize,
    len: usize,
}

impl<'a> Frame<'a> {
    /// A frame of `len` bytes at `head` in `buf`. Out-of-range values are clamped.
    pub fn new(buf: &'a mut [u8], head: usize, len: usize) -> Frame<'a> {
        let r = span(buf.len(), head, len);
        Frame { head: r.start, len: r.len(), buf }
    }

    /// The same frame, borrowed again (for a view that lives shorter than this one).
    #[inline]
    pub fn reborrow(&mut self) -> Frame<'_> {
        Frame { buf: &mut *self.buf, head: self.head, len: self.len }
    }

    /// Moves the frame to `buf[head..head + len]` (clamped).
    #[inline]
    pub fn set_span(&mut self, head: usize, len: usize) {
        let r = span(self.buf.len(), head, len);
        self.head = r.start;
        self.len = r.len();
    }
    /// `len` bytes at `head` of the whole buffer (clamped), wherever the frame is now.
    #[inline]
    pub fn bytes_at(&self, head: usize, len: usize) -> &[u8] {
        &self.buf[span(self.buf.len(), head, len)]
    }
    #[inline]
    pub fn data(&self) -> &[u8] {
        &self.buf[self.head..self.head + self.len]
    }
    #[inline]
    pub fn data_mut(&mut self) -> &mut [u8] {
        &mut self.buf[self.head..self.head + self.len]
    }
    #[inline]
    pub fn head(&self) -> usize {
        self.head
    }
    #[inline]
    pub fn len(&self) -> usize {
        self.len
    }
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
    /// Sets the length (shrinking or growing into tailroom); false if it does not fit.
    #[inline]
    pub fn set_len(&mut self, len: usize) -> bool {
        if self.head + len > self.buf.len() {
            return false;
        }
        self.len = len;
        true
    }
    /// Grows the frame by `n` bytes at the front (uninitialised contents), using headroom
    /// when there is enough, else moving the data towards the tail. False if it cannot fit.
    #[inline]
    pub fn prepend(&mut self, n: usize) -> bool {
        if self.head >= n {
            self.head -= n;
            self.len += n;
            return true;
        }
        if self.len + n > self.buf.len() {
            return false;
        }
        self.buf.copy_within(self.head..self.head + self.len, n);
        self.head = 0;
        self.len += n;
        true
    }
}
