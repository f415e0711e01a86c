# Reads `go test -bench` output with sub-benchmarks named …/oidcgate and
# …/raw (or …/baseline), takes the median ns/op and allocs/op of each over
# -count runs, and prints a Markdown table with oidcgate ÷ baseline.
# Usage: go test -bench . -count 5 ./keys | awk -f bench/ratio.awk
/^Benchmark/ {
	name = $1; sub(/-[0-9]+$/, "", name)
	n = split(name, parts, "/")
	side = parts[n]; base = substr(name, 1, length(name) - length(side) - 1)
	for (i = 2; i <= NF; i++) {
		if ($(i+1) == "ns/op") ns[base, side, ++cnt[base, side]] = $i
		if ($(i+1) == "allocs/op") al[base, side] = $i
	}
	if (!(base in seen)) { seen[base] = 1; order[++nb] = base }
}
function median(base, side,    k, m, v, i, j, t) {
	m = cnt[base, side]
	if (m == 0) return ""
	for (k = 1; k <= m; k++) v[k] = ns[base, side, k] + 0
	for (i = 1; i <= m; i++) for (j = i + 1; j <= m; j++) if (v[j] < v[i]) { t = v[i]; v[i] = v[j]; v[j] = t }
	return (m % 2) ? v[(m + 1) / 2] : (v[m / 2] + v[m / 2 + 1]) / 2
}
END {
	print "| benchmark | oidcgate ns/op | baseline ns/op | ratio | oidcgate allocs | baseline allocs |"
	print "| --- | ---: | ---: | ---: | ---: | ---: |"
	for (b = 1; b <= nb; b++) {
		base = order[b]
		o = median(base, "oidcgate"); r = median(base, "raw"); if (r == "") r = median(base, "baseline")
		if (o == "" || r == "") continue
		bs = cnt[base, "raw"] ? "raw" : "baseline"
		printf "| %s | %.0f | %.0f | %.2f× | %s | %s |\n", base, o, r, o / r, al[base, "oidcgate"], al[base, bs]
	}
}
