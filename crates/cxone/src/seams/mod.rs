//! NICE CXone behind dedupd's platform seams (`dedupd-platform`).
