#!/usr/bin/perl
# perl workload for tests/test_programs.py: hashes, string building, sort, regexes; deterministic output
# (our own LCG, sorted keys: never Perl's randomised hash order).
use strict;
use warnings;

my $x = 42;
sub rnd { $x = ($x * 1103515245 + 12345) % 2147483648; return $x; }

my %h;
my @keep;
for my $round (1 .. 40) {
    # hashes: insert, overwrite, delete
    for my $i (1 .. 3000) {
        my $k = "key" . (rnd() % 20000);
        $h{$k} .= chr(97 + rnd() % 26) x (1 + rnd() % 20);
    }
    for my $k (grep { length($h{$_}) > 150 } sort keys %h) {
        delete $h{$k};
    }
    # string building and regexes
    my $s = '';
    $s .= sprintf("%08x:", rnd()) for 1 .. 2000;
    my @f = split /:/, $s;
    my $n = () = $s =~ /[0-9]{3}[a-f]/g;
    (my $t = $s) =~ s/([a-f]+)/uc($1) . length($1)/ge;
    push @keep, $t if $round % 3 == 0;
    shift @keep if @keep > 6;
    # sort: numeric, by string, Schwartzian transform
    my @nums = sort { $a <=> $b } map { rnd() % 1000000 } 1 .. 5000;
    my @words = sort map { join '', map { chr(97 + rnd() % 26) } 1 .. (3 + rnd() % 9) } 1 .. 2000;
    my @st = map { $_->[1] } sort { $a->[0] <=> $b->[0] or $a->[1] cmp $b->[1] }
             map { [length($_), $_] } @words;
    # nested structures
    my %tree = map { $_ => { n => $_, list => [ (1) x ($_ % 50) ] } } 1 .. 1000;
    my $sum = 0;
    $sum += scalar @{ $tree{$_}{list} } for keys %tree;
    printf "round %d: keys=%d fields=%d matches=%d t=%d median=%d first=%s last=%s st=%s sum=%d\n",
        $round, scalar(keys %h), scalar(@f), $n, length($t), $nums[2500], $words[0], $words[-1], $st[-1], $sum;
}
my $total = 0;
$total += length($h{$_}) for keys %h;
print "final keys=", scalar(keys %h), " total=$total keep=", join(',', map { length } @keep), "\n";
print "sample=", join(',', map { "$_=" . length($h{$_}) } (sort keys %h)[0 .. 9]), "\n";
