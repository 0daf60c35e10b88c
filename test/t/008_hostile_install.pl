# A trusted extension's install and upgrade scripts run as the bootstrap
# superuser, with the target schema (public, which the installing database
# owner controls) first in search_path.  Here a database owner who is not a
# superuser fills public with look-alikes of every operator, function,
# aggregate, type and relation name that sql/migrate--*.sql use (read from
# the scripts at test time, so new sections are covered as they are written),
# then runs CREATE EXTENSION migrate and, in another database, CREATE
# EXTENSION migrate VERSION <each older install script> followed by ALTER
# EXTENSION migrate UPDATE.  None of the look-alikes may run, the owner must
# stay a non-superuser, and no object of the extension may depend on an
# object in public that is not the extension's own.  Then the whole workflow
# runs under the same hostile public, as the database owner and as a
# superuser, and nothing hostile may run either.
#
# First the test shows that the look-alikes are live: the unqualified
# "oid = regclass" comparison the 0.1.0 install script once had, run as a
# superuser with the same search_path, runs the owner's function and makes
# the owner a superuser; and the dependency check finds look-alikes used by a
# view, a CHECK constraint and a column default.
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Spec;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;

# ---------------------------------------------------------------- the scripts

my $sqldir = File::Spec->catdir(dirname(__FILE__), '..', '..', 'sql');
my @scripts = sort glob("$sqldir/migrate--*.sql");
ok(scalar(grep { m{/migrate--[^-/]+\.sql$} } @scripts) >= 1, 'an install script is there')
  or BAIL_OUT("no install script under $sqldir");

# SQL text without comments, string literals and psql meta-commands.  Dollar
# quoted bodies are kept: they are SQL (DO blocks, functions) too.
sub strip_sql
{
	my ($text) = @_;
	$text =~ s/\@ext(?:schema|owner)\@/x/g;
	$text =~ s/^\\[^\n]*//mg;
	my $out = '';
	pos($text) = 0;
	while (pos($text) < length($text))
	{
		if    ($text =~ /\G--[^\n]*/gc)                  { $out .= ' '; }
		elsif ($text =~ m{\G/\*.*?\*/}gcs)               { $out .= ' '; }
		elsif ($text =~ /\G[Ee]'(?:[^'\\]|\\.|'')*'/gcs) { $out .= " '' "; }
		elsif ($text =~ /\G'(?:[^']|'')*'/gcs)           { $out .= " '' "; }
		elsif ($text =~ /\G\$(?:[A-Za-z_]\w*)?\$/gc)     { $out .= ' '; }
		elsif ($text =~ /\G("(?:[^"]|"")*"|\w+|\s+|.)/gcs) { $out .= $1; }
	}
	return $out;
}

my $sql = join("\n", map { strip_sql(slurp_file($_)) } @scripts);

# The SQL statements of the C code (runs of adjacent string literals that read
# like a query), so that the workflow below also meets look-alikes of what
# the extension's functions use.  Format directives are left out.
my $srcdir = File::Spec->catdir(dirname(__FILE__), '..', '..', 'src');
my @c_sql;
for my $file (sort glob("$srcdir/*.c"))
{
	my $c = slurp_file($file);
	$c =~ s{/\*.*?\*/}{ }gs;
	$c =~ s/'(?:[^'\\\n]|\\[0-7]{1,3}|\\.)'/ /g;    # character constants
	while ($c =~ /((?:"(?:[^"\\\n]|\\.)*"\s*)+)/g)
	{
		my ($run, $s) = ($1, '');
		$s .= $1 while $run =~ /"((?:[^"\\\n]|\\.)*)"/g;
		$s =~ s/\\(.)/$1/g;
		$s =~ s/%[-0-9.]*(?:ll|l)?[sdu%]/ x /g;
		push @c_sql, $s
		  if $s =~ /\b(?:SELECT|INSERT|UPDATE|DELETE)\b/ && $s =~ /\b(?:FROM|INTO|SET)\b/;
	}
}
if (@c_sql) { note scalar(@c_sql) . ' SQL statements in the C code'; }
else        { note "no C code under $srcdir: look-alikes come from the scripts only"; }
my $c_sql = join("\n", map { strip_sql($_) } @c_sql);

# Operator symbols: those written, and those that a construct looks up by
# name (IN, CASE x WHEN, NULLIF, USING, IS DISTINCT FROM: "="; NOT IN: "<>";
# BETWEEN; LIKE).  ":=" and "=>" are not operators.
my $all_sql = "$sql\n$c_sql";
my %ops = map { $_ => 1 } qw(= <> < > <= >=);
while ($all_sql =~ /(?<!:)([-+*\/<>=~!@#%^&|`?]+)/g)
{
	my $op = $1;
	$op = '<>' if $op eq '!=';
	next if $op eq '=>' || $op =~ m{--|/\*};
	# a name of several characters ends in + or - only with one of these in it
	next if length($op) > 1 && $op =~ /[-+]$/ && $op !~ /[~!@#%^&|`?]/;
	$ops{$op} = 1;
}
$ops{'>='} = $ops{'<='} = 1 if $all_sql =~ /\bBETWEEN\b/i;
@ops{ '~~', '!~~' } = (1, 1) if $all_sql =~ /\bLIKE\b/i;
@ops{ '~~*', '!~~*' } = (1, 1) if $all_sql =~ /\bILIKE\b/i;
my @ops = sort keys %ops;
my @prefix_ops = grep { /^(?:-|\+|~|!|@|#|\|\/|\|\|\/)$/ } ('-', '+', '~', @ops);
my %seen;
@prefix_ops = grep { !$seen{$_}++ } @prefix_ops;

# Routines the scripts create get no look-alikes: they are created in public
# themselves, where one of the same signature would only make CREATE
# EXTENSION fail.  That calls resolve to them is what the dependency check
# below confirms.
my %own;
$own{ lc $1 } = 1
  while $sql =~
  /\bCREATE\s+(?:OR\s+REPLACE\s+)?(?:FUNCTION|PROCEDURE|AGGREGATE)\s+(?:\w+\.)?(\w+)/gi;

# Names called like functions, qualified or not.
my %calls;
while ($all_sql =~ /(\w+|"(?:[^"]|"")+")\s*\(/g)
{
	my $name = $1;
	$name = $name =~ /^"/ ? substr($name, 1, -1) =~ s/""/"/gr : lc $name;
	$calls{$name} = 1 unless $own{$name} || $name =~ /^\d/;
}

# Every word (for the pg_catalog types and relations named), and the
# extension's own relations (named migrate.<name>).
my %words;
$words{ lc $1 } = 1 while $all_sql =~ /\b([A-Za-z_]\w*)\b/g;
my %own_rels;
$own_rels{ lc $1 } = 1 while $sql =~ /\bmigrate\s*\.\s*([A-Za-z_]\w*)/gi;
delete $own_rels{$_} for keys %own;

note 'operators: ' . join(' ', @ops);
note 'prefix operators: ' . join(' ', @prefix_ops);
note 'own routines: ' . join(' ', sort keys %own);
note 'own relations: ' . join(' ', sort keys %own_rels);

# ---------------------------------------------------------------- the cluster

my $node = PostgreSQL::Test::Cluster->new('hostile');
$node->init;
$node->start;

# The bootstrap superuser, who runs the test.
my $superuser = $node->safe_psql('postgres', 'SELECT current_user');

# Our own queries never look at public.
my $pin = 'SET search_path = pg_catalog, pg_temp;';

# SQL literal of a list of texts
sub text_array
{
	return "ARRAY[" . join(', ', map { "'" . s/'/''/gr . "'" } @_) . "]::pg_catalog.text[]";
}

# Run SQL as a role; returns (exit status, stdout, stderr).
sub sql_as
{
	my ($role, $db, $query) = @_;
	my ($out, $err) = ('', '');
	my $rc = $node->psql(
		$db, $query,
		stdout => \$out,
		stderr => \$err,
		on_error_stop => 1,
		extra_params => [ '-U', $role ]);
	return ($rc, $out, $err);
}

# Run SQL as a role; it must succeed without a look-alike saying it ran.
sub clean_as
{
	my ($role, $db, $query, $what) = @_;
	my ($rc, $out, $err) = sql_as($role, $db, $query);
	is($rc, 0, "$what: succeeds") or diag($err);
	unlike($err, qr/HOSTILE/, "$what: no look-alike ran");
	return $out;
}

# No look-alike ran in the database (even in a transaction rolled back since:
# the sequence counts them), and the owner is not a superuser.
sub no_hits
{
	my ($db, $what) = @_;
	is( $node->safe_psql(
			$db, qq{$pin
		SELECT count(*) || ' hits, counter called: ' || (SELECT is_called FROM attacker_tools.hit_count)
		  FROM attacker_tools.hits}),
		'0 hits, counter called: false',
		"$what: no look-alike ran");
	is($node->safe_psql('postgres', "$pin SELECT rolsuper FROM pg_roles WHERE rolname = 'attacker'"),
		'f', "$what: the database owner is still not a superuser");
}

# Objects of the extension that depend on an object in schema public which is
# not the extension's own.  Members are walked with their sub-objects: a
# view's rewrite rule, a table's constraints, column defaults, indexes,
# triggers, sequences and row types.
my $foreign_dependencies = qq{$pin
WITH RECURSIVE objs(classid, objid) AS (
    SELECT d.classid, d.objid
      FROM pg_depend d
     WHERE d.refclassid = 'pg_extension'::regclass
       AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'migrate')
       AND d.deptype = 'e'
    UNION
    SELECT d.classid, d.objid
      FROM pg_depend d
      JOIN objs o ON d.refclassid = o.classid AND d.refobjid = o.objid
     WHERE d.deptype IN ('a', 'i')
)
SELECT DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid) || ' -> '
       || pg_describe_object(d.refclassid, d.refobjid, 0)
  FROM pg_depend d
  JOIN objs o ON d.classid = o.classid AND d.objid = o.objid
 CROSS JOIN LATERAL pg_identify_object(d.refclassid, d.refobjid, 0) i
 WHERE i.schema = 'public'
   AND NOT EXISTS (SELECT FROM objs m WHERE m.classid = d.refclassid AND m.objid = d.refobjid)
 ORDER BY 1};

# ---------------------------------------------------------------- the attacker

$node->safe_psql('postgres', 'CREATE ROLE attacker LOGIN CREATEDB');
clean_as('attacker', 'postgres', 'CREATE DATABASE hostile_template', 'the owner creates a database');

my $keywords = $node->safe_psql('postgres',
	"$pin SELECT string_agg(word, ' ') FROM pg_get_keywords() WHERE catcode IN ('R', 'C')");
my %keyword = map { $_ => 1 } split / /, $keywords;
my @funcs = sort grep { !$keyword{$_} } keys %calls;
note 'functions: ' . join(' ', @funcs);

clean_as('attacker', 'hostile_template', <<'EOF', 'the owner sets up its tools');
-- The attacker's tools, outside the search_path of anyone it wants to fool.
CREATE SCHEMA attacker_tools;
GRANT USAGE ON SCHEMA attacker_tools TO PUBLIC;
CREATE TABLE attacker_tools.hits (
    id         bigserial PRIMARY KEY,
    tag        text NOT NULL,
    run_as     name NOT NULL,
    session_as name NOT NULL
);
CREATE SEQUENCE attacker_tools.hit_count;
GRANT INSERT ON attacker_tools.hits TO PUBLIC;
GRANT USAGE ON SEQUENCE attacker_tools.hits_id_seq, attacker_tools.hit_count TO PUBLIC;

-- Called by every look-alike: says so, counts itself in a sequence (which no
-- rollback undoes), records who ran it, and tries to make its author superuser.
CREATE FUNCTION attacker_tools.hit(tag text) RETURNS boolean
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
    RAISE WARNING 'HOSTILE % ran as % (session %)', tag, current_user, session_user;
    BEGIN
        PERFORM nextval('attacker_tools.hit_count');
        INSERT INTO attacker_tools.hits (tag, run_as, session_as) VALUES (tag, current_user, session_user);
    EXCEPTION WHEN OTHERS THEN
        RAISE WARNING 'HOSTILE % could not record itself: %', tag, SQLERRM;
    END;
    BEGIN
        EXECUTE 'ALTER ROLE attacker SUPERUSER';
    EXCEPTION WHEN OTHERS THEN
        NULL;
    END;
    RETURN true;
END
$$;

-- Plants the look-alikes in public: binary operators over every pair of
-- optypes, prefix operators, functions of each name with 0 to 4 arguments
-- (and variadic ones) returning what the pg_catalog function of that name
-- returns, aggregates for aggregate names, views named like the relations,
-- domains named like the types, and collations "C" and "POSIX".  Returns how
-- many objects it made.
CREATE FUNCTION attacker_tools.plant(ops text[], prefix_ops text[], funcs text[], words text[],
                                     own_rels text[], optypes regtype[], f1 regtype[], f2 regtype[],
                                     f3 regtype[], f4 regtype[])
RETURNS integer
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $plant$
DECLARE
    n       integer := 0;
    op      text;
    fname   text;
    word    text;
    l       regtype;
    r       regtype;
    a       regtype;
    b       regtype;
    c       regtype;
    sigs    text[];
    sig     text;
    args    regtype[];
    cmp     text[] := ARRAY['=', '<>', '<', '>', '<=', '>='];
    ret     text;
    body    text;
    fn      text;
    model   record;
    poly    boolean;
    tt      "char";
BEGIN
    FOREACH op IN ARRAY ops LOOP
        FOREACH l IN ARRAY optypes LOOP
            FOREACH r IN ARRAY optypes LOOP
                n := n + 1;
                fn := format('public.hostile_%s', n);
                IF op = ANY (cmp) THEN
                    ret := 'boolean';
                    body := format('RETURN $1::pg_catalog.text OPERATOR(pg_catalog.%s) $2::pg_catalog.text;', op);
                ELSE
                    ret := l::text;
                    body := 'RETURN $1;';
                END IF;
                EXECUTE format('CREATE FUNCTION %s(%s, %s) RETURNS %s LANGUAGE plpgsql AS %L',
                               fn, l, r, ret,
                               format('BEGIN PERFORM attacker_tools.hit(%L); %s END',
                                      format('operator %s(%s, %s)', op, l, r), body));
                EXECUTE format('CREATE OPERATOR public.%s (LEFTARG = %s, RIGHTARG = %s, FUNCTION = %s)',
                               op, l, r, fn);
            END LOOP;
        END LOOP;
    END LOOP;
    FOREACH op IN ARRAY prefix_ops LOOP
        FOREACH r IN ARRAY optypes LOOP
            n := n + 1;
            fn := format('public.hostile_%s', n);
            EXECUTE format('CREATE FUNCTION %s(%s) RETURNS %s LANGUAGE plpgsql AS %L', fn, r, r,
                           format('BEGIN PERFORM attacker_tools.hit(%L); RETURN $1; END',
                                  format('prefix operator %s(%s)', op, r)));
            EXECUTE format('CREATE OPERATOR public.%s (RIGHTARG = %s, FUNCTION = %s)', op, r, fn);
        END LOOP;
    END LOOP;

    sigs := ARRAY[''];
    FOREACH a IN ARRAY f1 LOOP
        sigs := sigs || a::text;
    END LOOP;
    FOREACH a IN ARRAY f2 LOOP
        FOREACH b IN ARRAY f2 LOOP
            sigs := sigs || format('%s, %s', a, b);
        END LOOP;
    END LOOP;
    FOREACH a IN ARRAY f3 LOOP
        FOREACH b IN ARRAY f3 LOOP
            FOREACH c IN ARRAY f3 LOOP
                sigs := sigs || format('%s, %s, %s', a, b, c);
            END LOOP;
        END LOOP;
    END LOOP;
    FOREACH a IN ARRAY f4 LOOP
        FOREACH b IN ARRAY f4 LOOP
            FOREACH c IN ARRAY f4 LOOP
                sigs := sigs || format('text, %s, %s, %s', a, b, c);
            END LOOP;
        END LOOP;
    END LOOP;
    sigs := sigs || ARRAY['VARIADIC anyarray', 'text, VARIADIC anyarray', 'text, VARIADIC text[]'];

    FOREACH fname IN ARRAY funcs LOOP
        IF EXISTS (SELECT FROM pg_proc p WHERE p.proname = fname AND p.prokind = 'a'
                      AND p.pronamespace = 'pg_catalog'::regnamespace) THEN
            FOREACH a IN ARRAY optypes LOOP
                n := n + 1;
                fn := format('public.hostile_%s', n);
                EXECUTE format('CREATE FUNCTION %s(%s, %s) RETURNS %s LANGUAGE plpgsql AS %L', fn, a, a, a,
                               format('BEGIN PERFORM attacker_tools.hit(%L); RETURN $2; END',
                                      format('aggregate %s(%s)', fname, a)));
                EXECUTE format('CREATE AGGREGATE public.%I(%s) (SFUNC = %s, STYPE = %s)', fname, a, fn, a);
            END LOOP;
            FOREACH a IN ARRAY f2 LOOP
                FOREACH b IN ARRAY f2 LOOP
                    n := n + 1;
                    fn := format('public.hostile_%s', n);
                    EXECUTE format('CREATE FUNCTION %s(text, %s, %s) RETURNS text LANGUAGE plpgsql AS %L',
                                   fn, a, b,
                                   format('BEGIN PERFORM attacker_tools.hit(%L); RETURN $2::pg_catalog.text; END',
                                          format('aggregate %s(%s, %s)', fname, a, b)));
                    EXECUTE format('CREATE AGGREGATE public.%I(%s, %s) (SFUNC = %s, STYPE = text)',
                                   fname, a, b, fn);
                END LOOP;
            END LOOP;
            n := n + 1;
            fn := format('public.hostile_%s', n);
            EXECUTE format('CREATE FUNCTION %s(bigint) RETURNS bigint LANGUAGE plpgsql AS %L', fn,
                           format('BEGIN PERFORM attacker_tools.hit(%L); RETURN $1 OPERATOR(pg_catalog.+) 1; END',
                                  format('aggregate %s(*)', fname)));
            EXECUTE format('CREATE AGGREGATE public.%I(*) (SFUNC = %s, STYPE = bigint, INITCOND = 0)', fname, fn);
            CONTINUE;
        END IF;
        FOREACH sig IN ARRAY sigs LOOP
            args := CASE WHEN sig = '' THEN '{}'::regtype[]
                         ELSE string_to_array(replace(sig, 'VARIADIC ', ''), ', ')::regtype[] END;
            poly := 'anyelement'::regtype = ANY (args) OR 'anyarray'::regtype = ANY (args);
            -- the pg_catalog function it imitates, preferably of the same arity
            SELECT p.oid, p.prorettype, p.proretset INTO model
              FROM pg_proc p
             WHERE p.proname = fname AND p.pronamespace = 'pg_catalog'::regnamespace
             ORDER BY p.pronargs = cardinality(args) DESC, p.oid
             LIMIT 1;
            body := 'RETURN NULL;';
            IF NOT FOUND THEN
                ret := 'text';
            ELSIF pg_get_function_result(model.oid) LIKE 'TABLE(%' THEN
                ret := pg_get_function_result(model.oid);
                body := 'RETURN;';
            ELSE
                SELECT t.typtype INTO tt FROM pg_type t WHERE t.oid = model.prorettype;
                ret := CASE
                    WHEN tt <> 'p' THEN model.prorettype::regtype::text
                    WHEN model.prorettype::regtype::text IN ('anyelement', 'anynonarray', 'anycompatible',
                                                             'anycompatiblenonarray') THEN 'anyelement'
                    WHEN model.prorettype::regtype::text IN ('anyarray', 'anycompatiblearray') THEN 'anyarray'
                    WHEN model.prorettype = 'void'::regtype THEN 'void'
                    ELSE 'text' END;
                IF ret IN ('anyelement', 'anyarray') AND NOT poly THEN
                    ret := CASE ret WHEN 'anyelement' THEN 'text' ELSE 'text[]' END;
                END IF;
                IF model.proretset THEN
                    ret := 'SETOF ' || ret;
                    body := 'RETURN;';
                ELSIF ret = 'void' THEN
                    body := 'RETURN;';
                ELSIF cardinality(args) > 0 AND ret = args[1]::text AND sig NOT LIKE 'VARIADIC%' THEN
                    body := 'RETURN $1;';
                ELSIF cardinality(args) > 0 AND ret = 'text' AND sig NOT LIKE 'VARIADIC%' THEN
                    body := 'RETURN $1::pg_catalog.text;';
                END IF;
            END IF;
            n := n + 1;
            BEGIN
                EXECUTE format('CREATE FUNCTION public.%I(%s) RETURNS %s LANGUAGE plpgsql AS %L',
                               fname, sig, ret,
                               format('BEGIN PERFORM attacker_tools.hit(%L); %s END',
                                      format('function %s(%s)', fname, sig), body));
            EXCEPTION WHEN duplicate_function THEN
                n := n - 1;     -- (text, VARIADIC text[]) is (text, text[]) again
            END;
        END LOOP;
    END LOOP;

    FOREACH word IN ARRAY words LOOP
        IF EXISTS (SELECT FROM pg_class k WHERE k.relname = word AND k.relkind IN ('r', 'v')
                      AND k.relnamespace = 'pg_catalog'::regnamespace) THEN
            -- every column but those of a pseudo-type (pg_attribute's anyarray)
            EXECUTE format('CREATE VIEW public.%I AS SELECT %s FROM pg_catalog.%I WHERE attacker_tools.hit(%L)',
                           word,
                           (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY a.attnum)
                              FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
                             WHERE a.attrelid = format('pg_catalog.%I', word)::regclass
                               AND a.attnum > 0 AND NOT a.attisdropped AND t.typtype <> 'p'),
                           word, format('relation public.%s', word));
            n := n + 1;
        END IF;
    END LOOP;
    FOREACH word IN ARRAY own_rels LOOP
        IF to_regclass(format('public.%I', word)) IS NULL THEN
            EXECUTE format('CREATE VIEW public.%I AS SELECT 1 AS x WHERE attacker_tools.hit(%L)',
                           word, format('relation public.%s', word));
            n := n + 1;
        END IF;
    END LOOP;
    FOREACH word IN ARRAY words LOOP
        IF EXISTS (SELECT FROM pg_type t WHERE t.typname = word AND t.typtype IN ('b', 'd', 'e', 'r', 'm')
                      AND t.typnamespace = 'pg_catalog'::regnamespace)
           AND to_regtype(format('public.%I', word)) IS NULL THEN
            EXECUTE format('CREATE DOMAIN public.%I AS pg_catalog.%I', word, word);
            n := n + 1;
        END IF;
    END LOOP;
    EXECUTE 'CREATE COLLATION public."C" (LOCALE = ''C'')';
    EXECUTE 'CREATE COLLATION public."POSIX" (LOCALE = ''POSIX'')';
    RETURN n + 2;
END
$plant$;
EOF

# Types of operator operands and function arguments.
my @optypes = (
	'oid', 'regclass', 'regproc', 'regprocedure', 'regrole', 'regnamespace',
	'regtype', 'text', 'name', '"char"', 'character varying', 'integer',
	'smallint', 'bigint', 'boolean', 'jsonb', 'json', 'bytea',
	'timestamp with time zone', 'interval', 'aclitem', 'text[]', 'name[]',
	'oid[]', 'aclitem[]', 'anyelement', 'anyarray');
my @f2 = (
	'text', 'name', 'oid', 'regclass', 'regprocedure', 'regrole', '"char"',
	'integer', 'bigint', 'boolean', 'jsonb', 'bytea', 'anyelement', 'text[]',
	'aclitem[]');
my @f3 = ('text', 'name', 'oid', 'regclass', 'regprocedure', 'anyelement', 'integer');
my @f4 = ('text', 'name', 'regprocedure', 'anyelement');
my $regtypes = sub { text_array(@_) . '::pg_catalog.regtype[]' };

my $planted = clean_as(
	'attacker', 'hostile_template',
	"SELECT attacker_tools.plant("
	  . join(",\n    ",
		text_array(@ops), text_array(@prefix_ops), text_array(@funcs),
		text_array(sort keys %words), text_array(sort keys %own_rels),
		$regtypes->(@optypes), $regtypes->(@optypes), $regtypes->(@f2),
		$regtypes->(@f3), $regtypes->(@f4))
	  . ")",
	'the owner plants look-alikes in public');
note "$planted look-alikes planted";
cmp_ok($planted, '>', 5000, 'thousands of look-alikes');
is( $node->safe_psql(
		'hostile_template', qq{$pin
	SELECT to_regoperator('public.=(oid,regclass)') IS NOT NULL,
	       to_regprocedure('public.format(text,regprocedure,name)') IS NOT NULL,
	       to_regtype('public.text') IS NOT NULL,
	       (SELECT count(*) FROM pg_proc WHERE pronamespace = 'public'::regnamespace AND prokind = 'a') > 0}),
	't|t|t|t',
	'public has =(oid, regclass), format(text, regprocedure, name), a type text and aggregates');

for my $db (qw(demo latest))
{
	clean_as('attacker', 'postgres', "CREATE DATABASE $db TEMPLATE hostile_template",
		"database $db");
}

# ---------------------------------------------------------------- they are live

# The comparison the 0.1.0 install script made unqualified, as the bootstrap
# superuser with the search_path of an extension script.
my ($rc, $out, $err) = sql_as(
	$superuser, 'demo', q{
SET search_path = public, pg_temp;
SELECT count(*) > 0 FROM pg_catalog.pg_depend d
 WHERE d.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND d.deptype = 'e';
SELECT format('%s', 'pg_catalog.pg_class'::pg_catalog.regclass);
SELECT max(rolname) FROM pg_catalog.pg_roles;
});
is($rc, 0, 'control: unqualified statements run');
like($err, qr/WARNING:  HOSTILE operator =\(oid, regclass\) ran as \w+/,
	'control: unqualified oid = regclass runs the look-alike');
is( $node->safe_psql(
		'demo', qq{$pin
	SELECT string_agg(DISTINCT tag, '; ' ORDER BY tag) FROM attacker_tools.hits
	 WHERE run_as = (SELECT rolname FROM pg_roles WHERE oid = 10)}),
	'aggregate max(name); function format(text, regclass); operator =(oid, regclass)',
	'control: operator, function and aggregate look-alikes ran as the bootstrap superuser');
is($node->safe_psql('postgres', "$pin SELECT rolsuper FROM pg_roles WHERE rolname = 'attacker'"),
	't', 'control: and made the database owner a superuser');
$node->safe_psql('postgres', 'ALTER ROLE attacker NOSUPERUSER');

# The dependency check finds look-alikes used by a view, a CHECK constraint
# and a column default that are members of the extension.
clean_as('attacker', 'demo', 'CREATE EXTENSION migrate', 'control: CREATE EXTENSION');
is($node->safe_psql('demo', $foreign_dependencies), '', 'control: nothing found before');
$node->safe_psql(
	'demo', q{
SET search_path = public, pg_temp;
CREATE VIEW migrate.probe AS SELECT 1::oid = 'pg_class'::regclass AS x;
CREATE TABLE migrate.probe_t (a oid CHECK (a = 'pg_class'::regclass),
                              b text DEFAULT format('%s', 'pg_class'::regclass));
ALTER EXTENSION migrate ADD VIEW migrate.probe;
ALTER EXTENSION migrate ADD TABLE migrate.probe_t;
});
my $found = $node->safe_psql('demo', $foreign_dependencies);
like($found, qr/^rule _RETURN on view migrate\.probe -> operator public\.=\(oid,regclass\)$/m,
	'control: a view rule using a look-alike is found');
like($found, qr/^constraint probe_t_a_check on table migrate\.probe_t -> operator public\.=\(oid,regclass\)$/m,
	'control: a CHECK constraint using a look-alike is found');
like($found, qr/^default value for column b of table migrate\.probe_t -> function public\.format\(text,regclass\)$/m,
	'control: a column default using a look-alike is found');

my $log_offset = -s $node->logfile;

# ---------------------------------------------------------------- install, update

my $default_version = $node->safe_psql('postgres',
	"$pin SELECT default_version FROM pg_available_extensions WHERE name = 'migrate'");

clean_as('attacker', 'latest', 'CREATE EXTENSION migrate', 'CREATE EXTENSION migrate');
is($node->safe_psql('latest', "$pin SELECT extversion FROM pg_extension WHERE extname = 'migrate'"),
	$default_version, "installed version $default_version");
no_hits('latest', 'CREATE EXTENSION');
is($node->safe_psql('latest', $foreign_dependencies), '',
	'CREATE EXTENSION: no object of the extension depends on an object in public');

# Every older install script, then ALTER EXTENSION UPDATE to the default.
my @old = grep { $_ ne $default_version } map { m{/migrate--([^-/]+)\.sql$} ? $1 : () } @scripts;
for my $version (@old)
{
	my $db = "updated_" . ($version =~ s/\W/_/gr);
	clean_as('attacker', 'postgres', "CREATE DATABASE $db TEMPLATE hostile_template", "database $db");
	clean_as('attacker', $db, "CREATE EXTENSION migrate VERSION '$version'",
		"CREATE EXTENSION migrate VERSION '$version'");
	no_hits($db, "CREATE EXTENSION VERSION '$version'");
	is($node->safe_psql($db, $foreign_dependencies), '',
		"VERSION '$version': no object of the extension depends on an object in public");
	clean_as('attacker', $db, 'ALTER EXTENSION migrate UPDATE', "ALTER EXTENSION migrate UPDATE from $version");
	is($node->safe_psql($db, "$pin SELECT extversion FROM pg_extension WHERE extname = 'migrate'"),
		$default_version, "updated from $version to $default_version");
	no_hits($db, "ALTER EXTENSION UPDATE from $version");
	is($node->safe_psql($db, $foreign_dependencies), '',
		"updated from $version: no object of the extension depends on an object in public");
}
ok(scalar(@old) >= 1, 'at least one update path was tried');

# ---------------------------------------------------------------- the workflow

# Everything a user does, with the hostile public in place and public in
# search_path.  The migrations' own SQL qualifies what it uses: it runs as the
# caller, and what it resolves is the caller's business; what is tested here
# is the extension's own statements.
sub workflow
{
	my ($role, $db, $p) = @_;
	my $schema = "app_$p";
	my $q = sub { my ($s) = @_; $s =~ s/'/''/g; return "'$s'" };
	my $what = "$role in $db";

	is( clean_as(
			$role, $db, qq{
SET client_min_messages = notice;
SELECT pg_catalog.length(migrate_add('$p.1', 'tools',
    ${\ $q->("CREATE SCHEMA $schema; CREATE TABLE $schema.tools (id integer PRIMARY KEY, label text NOT NULL CHECK (label OPERATOR(pg_catalog.<>) ''))")},
    down => ${\ $q->("DROP SCHEMA $schema CASCADE")},
    verify => ${\ $q->("SELECT pg_catalog.to_regclass('$schema.tools') IS NOT NULL")}));
SELECT pg_catalog.length(migrate_add('$p.2', 'seed',
    ${\ $q->("INSERT INTO $schema.tools SELECT g, 'tool ' OPERATOR(pg_catalog.||) g::text FROM pg_catalog.generate_series(1, 5) g")},
    down => ${\ $q->("DELETE FROM $schema.tools")},
    expect => '{"$schema.tools": 5}'));
SELECT result FROM migrate_add_script('V$p.3__more.sql', ${\ $q->("CREATE TABLE $schema.more (id integer)")});
SELECT result FROM migrate_add_script('U$p.3__more.sql', ${\ $q->("DROP TABLE $schema.more")});
}, "$what: migrate_add, migrate_add_script"),
		"64\n64\nnew\nupdated",
		"$what: registered");
	is(clean_as($role, $db, 'SELECT pg_catalog.count(*) FROM migrate_plan()', "$what: migrate_plan"),
		3, "$what: three planned");
	is( clean_as(
			$role, $db, q{
SELECT pg_catalog.string_agg(version OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) action, ', ')
  FROM migrate_apply(dry_run => true)}, "$what: migrate_apply(dry_run)"),
		"$p.1 dry run, $p.2 dry run, $p.3 dry run",
		"$what: dry run");
	is( clean_as(
			$role, $db, q{
SELECT pg_catalog.string_agg(version OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) action, ', ')
  FROM migrate_apply()}, "$what: migrate_apply"),
		"$p.1 applied, $p.2 applied, $p.3 applied",
		"$what: applied");
	is( clean_as(
			$role, $db, qq{
SELECT pg_catalog.string_agg(version OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) state, ', ')
  FROM migrate_status() WHERE version OPERATOR(pg_catalog.~~) '$p.%'}, "$what: migrate_status"),
		"$p.1 applied, $p.2 applied, $p.3 applied",
		"$what: status");
	is(clean_as($role, $db, 'SELECT pg_catalog.count(*) FROM migrate_validate()', "$what: migrate_validate"),
		0, "$what: nothing to report");
	cmp_ok(clean_as($role, $db, 'SELECT migrate_verify()', "$what: migrate_verify"),
		'>', 3, "$what: verified");
	is( clean_as(
			$role, $db, 'SELECT pg_catalog.count(*) FILTER (WHERE NOT ok) FROM migrate_check()',
			"$what: migrate_check"),
		0, "$what: every check passes");
	is( clean_as(
			$role, $db, qq{
SELECT pg_catalog.string_agg(version OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) action, ', ')
  FROM migrate_rollback('$p.1')}, "$what: migrate_rollback"),
		"$p.3 reverted, $p.2 reverted",
		"$what: rolled back");
	is( clean_as(
			$role, $db, qq{
SELECT pg_catalog.string_agg(version OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) action, ', ')
  FROM migrate_baseline('$p.2')}, "$what: migrate_baseline"),
		"$p.2 baseline",
		"$what: baselined");
	clean_as($role, $db, 'CALL migrate_run()', "$what: CALL migrate_run()");
	is( clean_as(
			$role, $db, qq{
SELECT pg_catalog.string_agg(version OPERATOR(pg_catalog.||) ' ' OPERATOR(pg_catalog.||) state, ', ')
  FROM migrate_status() WHERE version OPERATOR(pg_catalog.~~) '$p.%'}, "$what: migrate_status"),
		"$p.1 applied, $p.2 applied, $p.3 applied",
		"$what: all applied again");
	no_hits($db, $what);
}

# The owner first: a verify query re-runs as the role that registered it, and
# the owner may not re-run a superuser's.
for my $db ('latest', map { "updated_" . s/\W/_/gr } @old)
{
	workflow('attacker', $db, '1');
	workflow($superuser, $db, '2');
}

unlike(slurp_file($node->logfile, $log_offset), qr/HOSTILE/,
	'the server log shows no look-alike running after the controls');
is($node->safe_psql('postgres', "$pin SELECT rolsuper FROM pg_roles WHERE rolname = 'attacker'"),
	'f', 'the database owner never became a superuser');

$node->stop;
done_testing();
