//! C boundary (filled in next).
