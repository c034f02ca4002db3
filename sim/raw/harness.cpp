// Raw Verilator harness of the generated top level `aoncim_top`: no Python, no VPI.
//
// Replays a script of host-bus operations recorded from the host driver (sim/recording_bus.py,
// built and run by sim/raw_verilator.py): AXI4-Lite word writes and reads driven pin-level, waits
// for the interrupt, and timing marks. Writes every read's data and every mark's wall time and
// clock count to the output file; Python feeds the reads back through the driver and scores them.
//
//   harness SCRIPT OUT [VCD]
//
// Script, one operation per line (addresses and words hex, counts decimal):
//   W <addr> <n> <w0> ... <wn-1>   write n consecutive words from byte address addr
//   R <addr> <n>                   read n consecutive words
//   I <max_cycles>                 clock until irq is high (error after max_cycles)
//   M <name>                       timing mark
// Output: "M <name> <wall ns> <CPU ns> <clock cycles>" per mark (all counted from the release of
// reset), "R <n> <w0> ..." per read (hex), then "X <wall ns> <CPU ns> <cycles>" for the whole
// replay, or "E <message>" on a bus error or timeout (exit code 3).
//
// Handshakes follow sim/host_bus.py's FastAxiLiteHostBus: inputs change after a clock edge, the
// READY/VALID outputs are sampled before the next rising edge (after eval), and a word counts as
// taken at the edge where VALID and READY were both high. BREADY and RREADY stay high; the next
// word is presented as soon as the subordinate took the previous one.
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <time.h>

#include "Vaoncim_top.h"
#include "verilated.h"
#if VM_TRACE
#include "verilated_vcd_c.h"
#endif

#define AX(name) s_axil___05F##name

namespace {

struct Op {
    char kind;
    uint32_t addr = 0;
    uint64_t n = 0;  // words (W, R) or max cycles (I)
    std::vector<uint32_t> words;
    std::string name;
};

struct Mark {
    std::string name;
    uint64_t ns;
    uint64_t cpu;
    uint64_t cycles;
};

// CPU time of this process: on a shared machine the wall time also counts other processes' turns.
uint64_t cpu_ns() {
    timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

Vaoncim_top* top = nullptr;
uint64_t cycles = 0;
#if VM_TRACE
VerilatedVcdC* tfp = nullptr;
#endif

inline void tick() {
    top->clk = 1;
    top->eval();
#if VM_TRACE
    if (tfp) tfp->dump(10 * cycles + 5);
#endif
    top->clk = 0;
    top->eval();
#if VM_TRACE
    if (tfp) tfp->dump(10 * cycles + 10);
#endif
    ++cycles;
}

struct BusError {
    std::string what;
};

std::string hex(uint64_t v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%#llx", static_cast<unsigned long long>(v));
    return buf;
}

void write_burst(uint32_t addr, const std::vector<uint32_t>& words) {
    const size_t n = words.size();
    size_t sent = 0, pending = 0;
    top->AX(awaddr) = addr;
    top->AX(wdata) = words[0];
    top->AX(awvalid) = 1;
    top->AX(wvalid) = 1;
    while (sent < n || pending) {
        top->eval();  // outputs for the inputs just changed
        const bool taken = top->AX(awvalid) && top->AX(awready) && top->AX(wready);
        const bool resp = top->AX(bvalid);
        const unsigned bresp = top->AX(bresp);
        tick();
        if (pending && resp) {
            --pending;
            if (bresp) {
                top->AX(awvalid) = 0;
                top->AX(wvalid) = 0;
                throw BusError{"write of " + hex(addr + 4 * (sent - 1)) + " answered with BRESP " + std::to_string(bresp)};
            }
        }
        if (taken) {
            ++sent;
            ++pending;
            if (sent < n) {
                top->AX(awaddr) = addr + 4 * sent;
                top->AX(wdata) = words[sent];
            } else {
                top->AX(awvalid) = 0;
                top->AX(wvalid) = 0;
            }
        }
    }
}

void read_burst(uint32_t addr, uint64_t n, std::vector<uint32_t>& out) {
    out.clear();
    out.reserve(n);
    uint64_t sent = 0;
    top->AX(araddr) = addr;
    top->AX(arvalid) = 1;
    while (out.size() < n) {
        top->eval();
        const bool taken = top->AX(arvalid) && top->AX(arready);
        const bool rvalid = top->AX(rvalid);
        const uint32_t rdata = top->AX(rdata);
        const unsigned rresp = top->AX(rresp);
        tick();
        if (rvalid) {
            if (rresp) {
                top->AX(arvalid) = 0;
                throw BusError{"read of " + hex(addr + 4 * out.size()) + " answered with RRESP " + std::to_string(rresp)};
            }
            out.push_back(rdata);
        }
        if (taken) {
            ++sent;
            if (sent < n) {
                top->AX(araddr) = addr + 4 * sent;
            } else {
                top->AX(arvalid) = 0;
            }
        }
    }
}

void wait_irq(uint64_t max_cycles) {
    top->eval();
    uint64_t waited = 0;
    while (!top->irq) {
        if (waited++ >= max_cycles) throw BusError{"timeout: no interrupt within " + std::to_string(max_cycles) + " cycles"};
        tick();
    }
}

bool parse_script(const char* path, std::vector<Op>& ops, std::string& err) {
    std::ifstream in(path);
    if (!in) {
        err = std::string("cannot open script ") + path;
        return false;
    }
    std::string line;
    size_t lineno = 0;
    while (std::getline(in, line)) {
        ++lineno;
        if (line.empty() || line[0] == '#') continue;
        std::istringstream ls(line);
        Op op;
        ls >> op.kind;
        bool ok = true;
        switch (op.kind) {
            case 'W':
                ls >> std::hex >> op.addr >> std::dec >> op.n >> std::hex;
                op.words.resize(op.n);
                for (auto& w : op.words) ls >> w;
                ok = !ls.fail() && op.n > 0;
                break;
            case 'R':
                ls >> std::hex >> op.addr >> std::dec >> op.n;
                ok = !ls.fail() && op.n > 0;
                break;
            case 'I':
                ls >> std::dec >> op.n;
                ok = !ls.fail();
                break;
            case 'M':
                ls >> op.name;
                ok = !ls.fail();
                break;
            default:
                ok = false;
        }
        if (!ok) {
            err = std::string(path) + ":" + std::to_string(lineno) + ": malformed operation";
            return false;
        }
        ops.push_back(std::move(op));
    }
    return true;
}

}  // namespace

int main(int argc, char** argv) {
    if (argc < 3) {
        std::fprintf(stderr, "usage: %s SCRIPT OUT [VCD]\n", argv[0]);
        return 2;
    }
    std::vector<Op> ops;
    std::string err;
    if (!parse_script(argv[1], ops, err)) {
        std::fprintf(stderr, "%s\n", err.c_str());
        return 2;
    }
    std::FILE* out = std::fopen(argv[2], "w");
    if (!out) {
        std::fprintf(stderr, "cannot write %s\n", argv[2]);
        return 2;
    }

    auto ctx = std::make_unique<VerilatedContext>();
    ctx->traceEverOn(argc > 3);
    top = new Vaoncim_top{ctx.get()};
#if VM_TRACE
    if (argc > 3) {
        tfp = new VerilatedVcdC;
        top->trace(tfp, 99);
        tfp->open(argv[3]);  // built with --timescale 1ns/1ns: a 10 ns clock, as the cocotb testbench's
    }
#else
    if (argc > 3) std::fprintf(stderr, "built without --trace: no waveform written\n");
#endif

    // Inputs idle, reset for 4 cycles then 2 idle cycles (as sim/tb_top.py's reset).
    top->clk = 0;
    top->AX(awvalid) = 0;
    top->AX(wvalid) = 0;
    top->AX(arvalid) = 0;
    top->AX(awaddr) = 0;
    top->AX(araddr) = 0;
    top->AX(wdata) = 0;
    top->AX(wstrb) = 0xF;
    top->AX(bready) = 1;
    top->AX(rready) = 1;
    top->rst = 1;
    top->eval();
#if VM_TRACE
    if (tfp) tfp->dump(0);
#endif
    for (int i = 0; i < 4; ++i) tick();
    top->rst = 0;
    for (int i = 0; i < 2; ++i) tick();

    std::vector<Mark> marks;
    std::vector<std::vector<uint32_t>> reads;
    const uint64_t cycles0 = cycles;
    const uint64_t cpu0 = cpu_ns();
    const auto t0 = std::chrono::steady_clock::now();
    auto ns = [&] {
        return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                         std::chrono::steady_clock::now() - t0).count());
    };
    int rc = 0;
    try {
        for (const Op& op : ops) {
            switch (op.kind) {
                case 'W':
                    write_burst(op.addr, op.words);
                    break;
                case 'R':
                    reads.emplace_back();
                    read_burst(op.addr, op.n, reads.back());
                    break;
                case 'I':
                    wait_irq(op.n);
                    break;
                case 'M':
                    marks.push_back({op.name, ns(), cpu_ns() - cpu0, cycles - cycles0});
                    break;
            }
        }
    } catch (const BusError& e) {
        err = e.what;
        rc = 3;
    }
    const uint64_t total_ns = ns(), total_cpu_ns = cpu_ns() - cpu0, total_cycles = cycles - cycles0;

    std::fprintf(out, "aoncim-raw 1\n");
    for (const Mark& m : marks)
        std::fprintf(out, "M %s %llu %llu %llu\n", m.name.c_str(), static_cast<unsigned long long>(m.ns),
                     static_cast<unsigned long long>(m.cpu), static_cast<unsigned long long>(m.cycles));
    for (const auto& r : reads) {
        std::fprintf(out, "R %zu", r.size());
        for (uint32_t w : r) std::fprintf(out, " %x", w);
        std::fputc('\n', out);
    }
    if (rc)
        std::fprintf(out, "E %s\n", err.c_str());
    else
        std::fprintf(out, "X %llu %llu %llu\n", static_cast<unsigned long long>(total_ns),
                     static_cast<unsigned long long>(total_cpu_ns), static_cast<unsigned long long>(total_cycles));
    std::fclose(out);

#if VM_TRACE
    if (tfp) {
        tfp->close();
        delete tfp;
    }
#endif
    top->final();
    delete top;
    return rc;
}
