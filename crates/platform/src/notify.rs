//! (filled by the seam work)
