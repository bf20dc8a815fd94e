import sys, re
def norm(t):
    t = t.lower().replace('-', ' ')
    t = re.sub(r"[^a-z0-9' ]", ' ', t)
    return t.split()
def ed(a, b):
    d = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        p, d[0] = d[0], i
        for j in range(1, len(b) + 1):
            p, d[j] = d[j], min(d[j] + 1, d[j-1] + 1, p + (a[i-1] != b[j-1]))
    return d[len(b)]
ref = {}
for i, line in enumerate(open('/work/shared/data/speech/transcripts.tsv')):
    if i == 0: continue
    f = line.rstrip('\n').split('\t'); ref[f[0]] = f[2]
for path in sys.argv[1:]:
    E = N = 0
    for line in open(path):
        name, hyp = line.rstrip('\n').split('\t', 1)
        r = norm(ref[name]); E += ed(r, norm(hyp)); N += len(r)
    print(f"{path}: WER {E/N:.4f} ({E} errors / {N} words)")
