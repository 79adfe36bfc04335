// Churn.java: the JVM on osmem (tests/test_programs.py, check_java). The JVM's own native memory (class metadata,
// the JIT compilers' arenas, thread stacks' bookkeeping, GC worker structures) comes from malloc, from a dozen
// threads at once; direct ByteBuffers (Unsafe.allocateMemory: malloc, and free when they are cleaned) and
// java.util.zip's native zlib streams are malloc'd by the program's own threads, across the mmap threshold.
// Prints checksums that do not depend on the allocator or on the threads' timing.
import java.nio.ByteBuffer;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.zip.CRC32;
import java.util.zip.Deflater;
import java.util.zip.Inflater;

public class Churn {
    // Task t: a map of strings, direct buffers of 1 KiB..1 MiB written and read back, and a deflate/inflate round
    // trip of 64 KiB..512 KiB; returns a checksum of what it saw.
    static long task(int t) throws Exception {
        CRC32 crc = new CRC32();
        Map<String, String> m = new HashMap<>();
        for (int i = 0; i < 20000; i++)
            m.put("k" + (i * 31 + t), "v" + i + ":" + t);
        long sum = 0;
        for (int i = 0; i < 20000; i += 7)
            sum += m.get("k" + (i * 31 + t)).length();
        List<ByteBuffer> keep = new ArrayList<>();
        for (int i = 0; i < 64; i++) {
            int n = 1024 << ((i + t) % 11);          // 1 KiB .. 1 MiB
            ByteBuffer b = ByteBuffer.allocateDirect(n);
            for (int j = 0; j < n; j += 4096)
                b.put(j, (byte) (i + j / 4096 + t));
            if (i % 3 == 0)
                keep.add(b);
            for (int j = 0; j < n; j += 4096)
                sum += b.get(j) & 0xff;
        }
        for (ByteBuffer b : keep)
            sum += b.capacity();
        byte[] data = new byte[(64 << 10) << (t % 4)];
        for (int i = 0; i < data.length; i++)
            data[i] = (byte) ((i * 7 + t) % 61);
        Deflater d = new Deflater(6);
        d.setInput(data);
        d.finish();
        byte[] z = new byte[data.length + 1024];
        int zn = d.deflate(z);
        d.end();
        Inflater inf = new Inflater();
        inf.setInput(z, 0, zn);
        byte[] back = new byte[data.length];
        int bn = inf.inflate(back);
        inf.end();
        if (bn != data.length || !java.util.Arrays.equals(back, data))
            throw new AssertionError("task " + t + ": inflate gave " + bn + " bytes, not the " + data.length
                                     + " deflated");
        crc.update(back);
        return sum * 1000003L + crc.getValue() + zn;
    }

    public static void main(String[] args) throws Exception {
        int tasks = args.length > 0 ? Integer.parseInt(args[0]) : 48;
        ExecutorService ex = Executors.newFixedThreadPool(6);
        List<Future<Long>> fs = new ArrayList<>();
        for (int t = 0; t < tasks; t++) {
            final int k = t;
            fs.add(ex.submit(() -> task(k)));
        }
        long total = 0;
        for (int t = 0; t < tasks; t++) {
            long v = fs.get(t).get();
            total = total * 31 + v;
            if (t % 8 == 0)
                System.out.println("task " + t + " " + v);
        }
        ex.shutdown();
        System.out.println("tasks " + tasks + " total " + total);
    }
}
