//! Gzip members: apk files are several gzip members back to back, and signatures cover
//! the *compressed* bytes of a member, so we compress and split member by member.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufRead, Read, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use flate2::{Compress, Compression, Crc, FlushCompress, GzBuilder, Status};
use rayon::prelude::*;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};

/// Level for the small signature, control and index members (abuild uses `gzip -9`).
pub const SMALL_MEMBER_LEVEL: u32 = 9;
/// Level for data members (`gzip -6`, the gzip default and melange's choice).
pub const DATA_LEVEL: u32 = 6;

/// Bounds on unpacked sizes, against decompression bombs: a member that inflates past
/// its bound is refused with an error naming the bound, before more memory is spent.
///
/// The signature and control members of a package, each: `.PKGINFO` and scripts are a
/// few kilobytes in practice.
pub const MAX_CONTROL_UNPACKED: u64 = 16 << 20;
/// The data of one package (all its data members together).
pub const MAX_DATA_UNPACKED: u64 = 4 << 30;
/// A repository index: Alpine's largest (community, ~20,000 packages) unpacks to ~15 MiB.
pub const MAX_INDEX_UNPACKED: u64 = 128 << 20;
/// The largest of the bounds, for callers that read any apk file.
pub const DEFAULT_MAX_UNPACKED: u64 = MAX_DATA_UNPACKED;

/// A gzip writer whose header carries no name and no time (`gzip -n`), so that the same
/// input always gives the same bytes.
pub fn encoder<W: Write>(out: W, level: u32) -> flate2::write::GzEncoder<W> {
    GzBuilder::new()
        .mtime(0)
        .operating_system(3) // Unix, as `gzip -n` writes it
        .write(out, Compression::new(level))
}

pub fn compress(data: &[u8], level: u32) -> Vec<u8> {
    let mut enc = encoder(Vec::with_capacity(data.len() / 2 + 64), level);
    enc.write_all(data).expect("writing to a Vec cannot fail");
    enc.finish().expect("writing to a Vec cannot fail")
}

/// Input bytes per chunk of a [`ParallelEncoder`] at most, each deflated on its own
/// thread. Chunk boundaries depend only on the input (and on
/// [`ParallelEncoder::entry_boundary`] hints, which the writer derives from the input), so
/// the output does too. With the preset dictionary a larger chunk barely shrinks the
/// output (0.02% at 1 MiB), and a smaller batch keeps cores busy on small packages.
pub const CHUNK: usize = 128 << 10;

/// With entry hints, a chunk of at least this many bytes ends at the next entry.
const MIN_HINTED_CHUNK: usize = CHUNK / 2;

/// Input bytes before a chunk given to it as preset dictionary: deflate's whole window,
/// so a chunk finds every match a single-threaded deflater would find across the cut.
const WINDOW: usize = 32 << 10;

/// Chunks gathered before a batch is deflated on rayon: enough to keep every core busy,
/// little enough to bound memory (a few MiB in and out).
const BATCH_CHUNKS: usize = 32;

/// A gzip writer that deflates on every core and still writes ONE gzip member, as pigz
/// does: the input is cut into chunks of at most [`CHUNK`] bytes, each deflated by its own
/// deflater with the [`WINDOW`] bytes of input before it as preset dictionary, and ended
/// with a sync flush (an empty stored block, so the next chunk starts on a byte boundary),
/// the last one with the final block; the CRC-32 covers the whole input. Any inflater
/// (zlib, GNU gzip, apk-tools) reads it as a plain member: the dictionary is the
/// inflater's own window, which holds that input anyway. Without it each chunk would start
/// cold, 4% larger output on package-like content; with it we are within 1% of `gzip -6`.
/// The bytes depend only on the input, the level and the entry hints, never on the thread
/// count or on a [`DeflateMemo`].
pub struct ParallelEncoder<W: Write> {
    out: W,
    level: u32,
    /// Input not yet deflated, after `history` bytes already deflated that are kept as
    /// the dictionary of the next chunk.
    pending: Vec<u8>,
    history: usize,
    /// Where the closed chunks of `pending` end; the bytes after the last cut (or after
    /// `history`) are the open chunk.
    cuts: Vec<usize>,
    crc: Crc,
    header_written: bool,
    memo: Option<Arc<DeflateMemo>>,
}

impl<W: Write> ParallelEncoder<W> {
    pub fn new(out: W, level: u32) -> Self {
        ParallelEncoder {
            out,
            level,
            pending: Vec::with_capacity(WINDOW + CHUNK * BATCH_CHUNKS),
            history: 0,
            cuts: Vec::with_capacity(BATCH_CHUNKS),
            crc: Crc::new(),
            header_written: false,
            memo: None,
        }
    }

    /// Take deflated chunks from `memo` when another encoder already deflated the same
    /// bytes (after the same dictionary), and leave ours there for the others.
    pub fn with_memo(mut self, memo: Arc<DeflateMemo>) -> Self {
        self.memo = Some(memo);
        self
    }

    /// A hint from an archive writer: the next bytes start an entry of `len` bytes. The
    /// open chunk ends here when it is half full, or when a large entry starts, so that
    /// streams holding the same entries at different offsets (one image's layers for two
    /// architectures) cut them into the same chunks, which a [`DeflateMemo`] then shares.
    pub fn entry_boundary(&mut self, len: u64) -> io::Result<()> {
        let open = self.open_len();
        if open >= MIN_HINTED_CHUNK || (open > 0 && len >= MIN_HINTED_CHUNK as u64) {
            self.cut()?;
        }
        Ok(())
    }

    fn open_start(&self) -> usize {
        self.cuts.last().copied().unwrap_or(self.history)
    }

    fn open_len(&self) -> usize {
        self.pending.len() - self.open_start()
    }

    /// Close the open chunk; deflate the closed ones once a batch is gathered.
    fn cut(&mut self) -> io::Result<()> {
        self.cuts.push(self.pending.len());
        if self.cuts.len() >= BATCH_CHUNKS {
            self.deflate_closed_chunks()?;
        }
        Ok(())
    }

    /// Deflate the closed chunks, in parallel, and write them in order.
    fn deflate_closed_chunks(&mut self) -> io::Result<()> {
        let Some(&closed) = self.cuts.last() else {
            return Ok(());
        };
        self.write_header()?;
        let starts = std::iter::once(self.history).chain(self.cuts.iter().copied());
        let chunks: Vec<(usize, usize)> = starts.zip(self.cuts.iter().copied()).collect();
        let (level, memo, pending) = (self.level, self.memo.as_deref(), &self.pending);
        let deflated: Vec<Vec<u8>> = chunks
            .par_iter()
            .map(|&(start, end)| {
                let dictionary = &pending[start.saturating_sub(WINDOW)..start];
                let chunk = &pending[start..end];
                match memo {
                    Some(memo) => memo.deflate(chunk, dictionary, level),
                    None => deflate(chunk, dictionary, level, FlushCompress::Sync),
                }
            })
            .collect::<io::Result<_>>()?;
        for d in &deflated {
            self.out.write_all(d)?;
        }
        // Keep the last window of what was deflated: the next chunk's dictionary.
        let keep_from = closed.saturating_sub(WINDOW);
        self.pending.drain(..keep_from);
        self.history = closed - keep_from;
        self.cuts.clear();
        Ok(())
    }
    fn write_header(&mut self) -> io::Result<()> {
        if !self.header_written {
            // What `encoder` writes: no name, no time, XFL as gzip sets it, OS Unix.
            let xfl = match self.level {
                9.. => 2,
                0 | 1 => 4,
                _ => 0,
            };
            self.out
                .write_all(&[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, xfl, 3])?;
            self.header_written = true;
        }
        Ok(())
    }

    /// Deflate what is left as the final block, write the trailer, and return the writer.
    pub fn finish(mut self) -> io::Result<W> {
        self.deflate_closed_chunks()?;
        self.write_header()?;
        let (dictionary, last) = self.pending.split_at(self.history);
        let last = deflate(last, dictionary, self.level, FlushCompress::Finish)?;
        self.out.write_all(&last)?;
        self.out.write_all(&self.crc.sum().to_le_bytes())?;
        self.out.write_all(&self.crc.amount().to_le_bytes())?;
        self.out.flush()?;
        Ok(self.out)
    }
}

impl<W: Write> Write for ParallelEncoder<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.crc.update(buf);
        let mut rest = buf;
        while !rest.is_empty() {
            let take = rest.len().min(CHUNK - self.open_len());
            self.pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if self.open_len() == CHUNK {
                self.cut()?;
            }
        }
        Ok(buf.len())
    }

    /// Chunk boundaries are fixed by the input, so a flush cannot force one out early;
    /// it flushes only what was already deflated.
    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Deflated chunks shared between [`ParallelEncoder`]s of similar input: one image's
/// layers for several architectures hold mostly the same files, and deflate is a pure
/// function of the level, the dictionary and the input, so a chunk met again is deflated
/// once. The deflated bytes wait in a temporary file, not in memory; the index is keyed by
/// the SHA-256 of level, dictionary and input.
pub struct DeflateMemo {
    file: File,
    index: Mutex<MemoIndex>,
    hits: AtomicU64,
    misses: AtomicU64,
}

#[derive(Default)]
struct MemoIndex {
    /// Input digest -> where the deflated chunk is in `file`, and its length.
    chunks: HashMap<[u8; 32], (u64, usize)>,
    end: u64,
}

impl DeflateMemo {
    /// A memo whose file is an unnamed temporary file in `dir`.
    pub fn new_in(dir: &Path) -> io::Result<Self> {
        Ok(DeflateMemo {
            file: tempfile::tempfile_in(dir)?,
            index: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
        })
    }

    /// Chunks found in the memo, and chunks deflated, so far.
    pub fn counts(&self) -> (u64, u64) {
        (
            self.hits.load(Ordering::Relaxed),
            self.misses.load(Ordering::Relaxed),
        )
    }

    /// `chunk` deflated after `dictionary` and sync-flushed: from the memo when it is
    /// there, else deflated now and kept.
    fn deflate(&self, chunk: &[u8], dictionary: &[u8], level: u32) -> io::Result<Vec<u8>> {
        let key: [u8; 32] = Sha256::new()
            .chain_update([level as u8])
            .chain_update((dictionary.len() as u64).to_le_bytes())
            .chain_update(dictionary)
            .chain_update(chunk)
            .finalize()
            .into();
        let found = self.lock().chunks.get(&key).copied();
        if let Some((offset, len)) = found {
            let mut out = vec![0u8; len];
            self.file.read_exact_at(&mut out, offset)?;
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(out);
        }
        let out = deflate(chunk, dictionary, level, FlushCompress::Sync)?;
        self.misses.fetch_add(1, Ordering::Relaxed);
        let mut index = self.lock();
        if !index.chunks.contains_key(&key) {
            // Written before it is indexed: a reader never sees a chunk half written.
            self.file.write_all_at(&out, index.end)?;
            let at = index.end;
            index.chunks.insert(key, (at, out.len()));
            index.end += out.len() as u64;
        }
        Ok(out)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, MemoIndex> {
        // The index is consistent after every statement; a panic elsewhere cannot break it.
        self.index.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One raw deflate stream (no zlib or gzip framing) of `data`, ended by `flush`, that may
/// refer back into `dictionary`, the input just before `data`.
fn deflate(
    data: &[u8],
    dictionary: &[u8],
    level: u32,
    flush: FlushCompress,
) -> io::Result<Vec<u8>> {
    let mut c = Compress::new(Compression::new(level), false);
    if !dictionary.is_empty() {
        c.set_dictionary(dictionary).map_err(io::Error::other)?;
    }
    let mut out = Vec::with_capacity(data.len() + data.len() / 8 + 64);
    loop {
        let consumed = c.total_in() as usize;
        let status = c
            .compress_vec(&data[consumed..], &mut out, flush)
            .map_err(io::Error::other)?;
        let room_left = out.len() < out.capacity();
        let done = match flush {
            FlushCompress::Finish => status == Status::StreamEnd,
            // A sync flush is complete once all input is in and it did not run out of room.
            _ => c.total_in() as usize == data.len() && room_left,
        };
        if done {
            return Ok(out);
        }
        if !room_left {
            out.reserve(out.capacity().max(64));
        }
    }
}

/// One gzip member of a multi-member file.
#[derive(Debug)]
pub struct Member<'a> {
    /// The member's compressed bytes, exactly as in the file.
    pub compressed: &'a [u8],
    /// Where `compressed` starts in the file.
    pub offset: usize,
    pub unpacked: Vec<u8>,
}

/// Split `file` into its gzip members, inflating each. `max_unpacked` bounds the total
/// unpacked size.
pub fn split_members(file: &[u8], max_unpacked: u64) -> Result<Vec<Member<'_>>> {
    let mut reader = MemberReader::new(file);
    let mut members = Vec::new();
    let mut total = 0u64;
    while let Some(member) = reader.next_member(max_unpacked - total, max_unpacked) {
        let member = member?;
        total += member.unpacked.len() as u64;
        members.push(member);
    }
    Ok(members)
}

/// Reads the gzip members of a file one at a time, so that each may get its own bound
/// (a package's control member is small; its data may be large).
pub struct MemberReader<'a> {
    file: &'a [u8],
    rest: &'a [u8],
    count: usize,
}

impl<'a> MemberReader<'a> {
    pub fn new(file: &'a [u8]) -> Self {
        MemberReader {
            file,
            rest: file,
            count: 0,
        }
    }

    /// The next member, inflated to at most `budget` bytes; `None` at the end of the
    /// file. `bound` is the limit named in the error when `budget` is exceeded.
    pub fn next_member(&mut self, budget: u64, bound: u64) -> Option<Result<Member<'a>>> {
        if self.rest.is_empty() {
            return None;
        }
        let offset = self.file.len() - self.rest.len();
        let number = self.count + 1;
        let mut dec = flate2::bufread::GzDecoder::new(self.rest);
        let mut unpacked = Vec::new();
        if let Err(e) = (&mut dec)
            .take(budget.saturating_add(1))
            .read_to_end(&mut unpacked)
        {
            self.rest = &[];
            return Some(Err(Error::Malformed {
                reason: format!("gzip member {number} at byte {offset}: {e}"),
            }));
        }
        if unpacked.len() as u64 > budget {
            self.rest = &[];
            return Some(Err(Error::Malformed {
                reason: format!(
                    "gzip member {number} at byte {offset} unpacks to more than {bound} bytes, \
                     the size bound (a decompression bomb?)"
                ),
            }));
        }
        let mut after = dec.into_inner();
        // bufread::GzDecoder consumes exactly the member, so what is left is the next one.
        let consumed = self.rest.len() - after.fill_buf().map(|b| b.len()).unwrap_or(0);
        if consumed == 0 {
            self.rest = &[];
            return None;
        }
        let member = Member {
            compressed: &self.rest[..consumed],
            offset,
            unpacked,
        };
        self.rest = &self.rest[consumed..];
        self.count += 1;
        Some(Ok(member))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_concatenated_members_at_their_boundaries() {
        let a = compress(b"first", 9);
        let b = compress(b"second member", 6);
        let file = [a.clone(), b.clone()].concat();
        let members = split_members(&file, DEFAULT_MAX_UNPACKED).unwrap();
        assert_eq!(members.len(), 2);
        assert_eq!(members[0].compressed, &a[..]);
        assert_eq!(members[1].compressed, &b[..]);
        assert_eq!(members[1].offset, a.len());
        assert_eq!(members[1].unpacked, b"second member");
    }

    #[test]
    fn header_has_no_time_or_name() {
        let gz = compress(b"x", 9);
        assert_eq!(&gz[..10], &[0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 2, 3]);
    }

    /// Text that compresses like a package's files, several chunks long, not a whole
    /// number of chunks.
    fn sample(len: usize) -> Vec<u8> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut out = Vec::with_capacity(len);
        while out.len() < len {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let words = ["install ", "package ", "version ", "0x", "\n", "struct "];
            out.extend_from_slice(words[(x % 6) as usize].as_bytes());
            out.push(b'a' + (x >> 32) as u8 % 26);
        }
        out.truncate(len);
        out
    }

    /// `f` run on a rayon pool of `threads` threads.
    fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> T {
        rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .build()
            .unwrap()
            .install(f)
    }

    fn parallel(data: &[u8], threads: usize) -> Vec<u8> {
        on_threads(threads, || {
            let mut enc = ParallelEncoder::new(Vec::new(), DATA_LEVEL);
            // Odd write sizes: chunk boundaries must not follow the writes.
            for piece in data.chunks(7919) {
                enc.write_all(piece).unwrap();
            }
            enc.finish().unwrap()
        })
    }

    #[test]
    fn parallel_member_is_the_same_on_one_thread_and_four() {
        let data = sample(CHUNK * BATCH_CHUNKS * 2 + 12345);
        let one = parallel(&data, 1);
        assert_eq!(one, parallel(&data, 4));
        let members = split_members(&one, DEFAULT_MAX_UNPACKED).unwrap();
        assert_eq!(members.len(), 1, "one member, not one per chunk");
        assert_eq!(members[0].unpacked, data);
        assert_eq!(&one[..10], &compress(b"", DATA_LEVEL)[..10], "same header");
    }

    #[test]
    fn parallel_member_of_nothing_and_of_exact_chunks_inflates() {
        for len in [0, 1, CHUNK, CHUNK * BATCH_CHUNKS] {
            let data = sample(len);
            let gz = parallel(&data, 2);
            let members = split_members(&gz, DEFAULT_MAX_UNPACKED).unwrap();
            assert_eq!(members.len(), 1);
            assert_eq!(members[0].unpacked, data, "{len} bytes");
        }
    }

    /// What GNU gzip, an independent inflater, makes of `gz`, after `gzip -t` accepts it.
    fn gnu_gunzip(gz: &[u8]) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("data.gz");
        std::fs::write(&path, gz).unwrap();
        let test = std::process::Command::new("gzip")
            .arg("-t")
            .arg(&path)
            .status()
            .unwrap();
        assert!(test.success(), "gzip -t refused the member");
        let out = std::process::Command::new("gzip")
            .arg("-dc")
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        out.stdout
    }

    /// Across chunks and across batches, whose dictionaries come from the kept history.
    #[test]
    fn gnu_gzip_reads_a_parallel_member() {
        let data = sample(CHUNK * (BATCH_CHUNKS + 5) + 99);
        let gz = parallel(&data, 3);
        assert_eq!(gnu_gunzip(&gz), data);
    }

    /// Each chunk refers back into the one before: 16 KiB of noise repeated over 35
    /// chunks and two batches costs the noise once plus ~2 KiB of matches per chunk;
    /// chunks starting cold would pay the noise again each time (over 560 KiB).
    #[test]
    fn chunks_match_across_their_boundaries() {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let noise: Vec<u8> = (0..16 << 10)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect();
        let data = noise.repeat(CHUNK * (BATCH_CHUNKS + 3) / noise.len());
        let gz = parallel(&data, 2);
        assert!(gz.len() < 8 * noise.len(), "{} bytes", gz.len());
        assert_eq!(gnu_gunzip(&gz), data);
        let members = split_members(&gz, DEFAULT_MAX_UNPACKED).unwrap();
        assert_eq!(members[0].unpacked, data);
    }

    /// Entries of `sizes` bytes each, as an archive writer gives them: a hint, then the
    /// bytes (`sample` text, so equal sizes are equal entries).
    fn entries(sizes: &[usize], memo: Option<&Arc<DeflateMemo>>, threads: usize) -> Vec<u8> {
        on_threads(threads, || {
            let mut enc = ParallelEncoder::new(Vec::new(), DATA_LEVEL);
            if let Some(m) = memo {
                enc = enc.with_memo(Arc::clone(m));
            }
            for &size in sizes {
                enc.entry_boundary(size as u64).unwrap();
                enc.write_all(&sample(size)).unwrap();
            }
            enc.finish().unwrap()
        })
    }

    fn inflate(gz: &[u8]) -> Vec<u8> {
        let members = split_members(gz, DEFAULT_MAX_UNPACKED).unwrap();
        assert_eq!(members.len(), 1);
        members.into_iter().next().unwrap().unpacked
    }

    /// Small and large entries, several batches long.
    fn layer_like(first: usize) -> Vec<usize> {
        let mut sizes = vec![first];
        for k in 0..600usize {
            sizes.push(if k % 97 == 5 {
                700_000 + k
            } else {
                3_000 + k * 37 % 20_000
            });
        }
        sizes
    }

    #[test]
    fn hinted_chunks_give_the_same_bytes_on_any_thread_count_and_with_a_memo() {
        let sizes = layer_like(1000);
        let plain = entries(&sizes, None, 1);
        assert_eq!(plain, entries(&sizes, None, 3));
        let memo = Arc::new(DeflateMemo::new_in(&std::env::temp_dir()).unwrap());
        assert_eq!(
            plain,
            entries(&sizes, Some(&memo), 2),
            "first pass, filling the memo"
        );
        let (first_hits, deflated) = memo.counts();
        assert_eq!(
            plain,
            entries(&sizes, Some(&memo), 2),
            "second pass, from the memo"
        );
        let (hits, misses) = memo.counts();
        assert_eq!(misses, deflated, "the second pass deflated nothing");
        assert_eq!(
            hits - first_hits,
            first_hits + deflated,
            "and found every chunk"
        );
        let data: Vec<u8> = inflate(&plain);
        assert_eq!(data.len(), sizes.iter().sum::<usize>());
    }

    /// Two streams that differ in their first entry's length (an installed database
    /// naming another architecture) cut the rest into the same chunks, which the second
    /// stream finds in the memo; the bytes are what an encoder without a memo writes.
    #[test]
    fn a_memo_shares_the_chunks_of_shifted_streams() {
        let memo = Arc::new(DeflateMemo::new_in(&std::env::temp_dir()).unwrap());
        let first = entries(&layer_like(1000), Some(&memo), 2);
        let (_, deflated) = memo.counts();
        let second = entries(&layer_like(1700), Some(&memo), 2);
        let (hits, misses) = memo.counts();
        assert_eq!(second, entries(&layer_like(1700), None, 2));
        assert_ne!(first, second);
        assert!(
            hits * 10 >= deflated * 9,
            "{hits} of {deflated} chunks shared ({} deflated again)",
            misses - deflated
        );
        // GNU gzip reads what the memo assembled.
        assert_eq!(gnu_gunzip(&second), inflate(&second));
    }

    #[test]
    fn refuses_a_member_past_the_size_bound() {
        let gz = compress(&vec![0u8; 1 << 20], 9);
        let err = split_members(&gz, 1000).unwrap_err();
        assert!(err.to_string().contains("size bound"), "{err}");
    }

    #[test]
    fn reports_a_truncated_member() {
        let gz = compress(b"some text that compresses", 9);
        let err = split_members(&gz[..gz.len() - 5], DEFAULT_MAX_UNPACKED).unwrap_err();
        assert!(err.to_string().contains("gzip member 1"), "{err}");
    }
}
