# 0.4.0 is released and in use: a database created at 0.4.0 with a migration
# registered from a file (sections: its up script starts at line 3) and
# applied, one applied whose registered text a DBA edited by hand (the drift
# 0.4.0 could only refuse), and one pending.  0.5.0 added the catalog columns
# migrate.migrations.applied_up, drift and lines, so the new library refuses
# the 0.4.0 catalog (55000, with a hint) until ALTER EXTENSION migrate UPDATE.
# Updated, it has exactly the objects of a fresh install and keeps every row;
# the hand-made drift is 'changed' (applying refused until migrate_repair()
# accepts it); the file of the applied migration loaded again with a comment
# added is 'edited' (blocking nothing), with a statement changed 'changed',
# naming the line of the file, and restored it is applied again.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib "$FindBin::RealBin/lib";
use MigrateUpgrade qw($OBJECTS_SQL $CONFIG_SQL $INIT_PRIVS_SQL control_default_version fails_as);

my $node = PostgreSQL::Test::Cluster->new('upgrade_0_4');
$node->init;
$node->start;

my $latest = control_default_version($node);
isnt($latest, '0.4.0', "the default version ($latest) is newer than 0.4.0");
$node->safe_psql('postgres', q{
    CREATE ROLE dba LOGIN CREATEDB;
    CREATE DATABASE upgraded OWNER dba;
    CREATE DATABASE fresh OWNER dba;
});
sub as_dba
{
	my ($db, $sql) = @_;
	return $node->safe_psql($db, "SET client_min_messages = warning;\n$sql",
		connstr => $node->connstr($db) . ' user=dba');
}
my $extversion = q{SELECT extversion FROM pg_extension WHERE extname = 'migrate'};
my $status = q{SELECT string_agg(version || ':' || state, ',' ORDER BY version) FROM migrate_status()};
my $history_rows = q{SELECT string_agg(id || ' ' || version || ' ' || action || ' ' || hash, E'\n' ORDER BY id)
                       FROM migrate.history};

# the file of 001, as it was registered and applied at 0.4.0
my $file_001 = "-- the accounts\n-- migrate:up\nCREATE TABLE accounts (id bigint PRIMARY KEY);\n"
  . "INSERT INTO accounts SELECT generate_series(1, 5);\n-- migrate:down\nDROP TABLE accounts;\n";

# ---- a database at 0.4.0, its rows written as 0.4.0's code wrote them (this
# library refuses a 0.4.0 catalog): 001 from a file, 002 by migrate_add() and
# then edited by hand in the catalog, 003 pending
as_dba('upgraded', q{CREATE EXTENSION migrate VERSION '0.4.0'});
is(as_dba('upgraded', $extversion), '0.4.0', 'installed at 0.4.0');
$node->safe_psql('upgraded', q{
    SET ROLE dba;
    CREATE TABLE accounts (id bigint PRIMARY KEY);
    INSERT INTO accounts SELECT generate_series(1, 5);
    CREATE TABLE notes (id int);
    RESET ROLE;
    CREATE TEMP TABLE m (version text, name text, up text, down text, source text, applied boolean);
    INSERT INTO m VALUES
        ('001', 'accounts', E'CREATE TABLE accounts (id bigint PRIMARY KEY);\nINSERT INTO accounts SELECT generate_series(1, 5);\n',
         E'DROP TABLE accounts;\n', '001_accounts.sql', true),
        ('002', 'notes', 'CREATE TABLE notes (id int);', 'DROP TABLE notes;', 'migrate_add', true),
        ('003', 'more notes', 'INSERT INTO notes VALUES (1);', NULL, 'migrate_add', false);
    INSERT INTO migrate.migrations (version_key, version, name, up, down, checksum, registered_by, source)
    SELECT migrate_version_key(version), version, name, up, down, migrate_checksum(up), 'dba', source FROM m;
    INSERT INTO migrate.history (version, version_key, name, action, checksum, performed_by)
    SELECT version, migrate_version_key(version), name, 'register', migrate_checksum(up), 'dba' FROM m ORDER BY version;
    INSERT INTO migrate.applied (version_key, version, name, checksum, applied_by)
    SELECT migrate_version_key(version), version, name, migrate_checksum(up), 'dba' FROM m WHERE applied;
    INSERT INTO migrate.history (version, version_key, name, action, checksum, performed_by, duration, checks)
    SELECT version, migrate_version_key(version), name, 'apply', migrate_checksum(up), 'dba', '1 ms', 1
      FROM m WHERE applied ORDER BY version;
    -- edited by hand, as superuser: 0.4.0's migrate_add() refused it
    UPDATE migrate.migrations SET up = 'CREATE TABLE notes (id bigint);',
                                  checksum = migrate_checksum('CREATE TABLE notes (id bigint);')
     WHERE version = '002';
});
my $before_history = as_dba('upgraded', $history_rows);

# ---- the new library refuses the 0.4.0 catalog, and says what to do
my ($rc, $err) = fails_as($node, 'dba', 'upgraded', 'SELECT * FROM migrate_status()');
isnt($rc, 0, 'the 0.4.0 catalog is refused');
like($err, qr/ERROR:  55000: the migrate catalog of this database is older than the migrate library.*HINT:  Run ALTER EXTENSION migrate UPDATE/s,
	'... 55000, with a hint to update');

# ---- the update, and a fresh install to compare with
as_dba('upgraded', 'ALTER EXTENSION migrate UPDATE');
is(as_dba('upgraded', $extversion), $latest, "updated to $latest");
as_dba('fresh', 'CREATE EXTENSION migrate');
my $want = as_dba('fresh', $OBJECTS_SQL);
like($want, qr/^  drift text collate .*comment: changed \(statements differ/m, 'the listing has the column drift');
is(as_dba('upgraded', $OBJECTS_SQL), $want, 'the upgraded extension has exactly the objects of a fresh install');
is(as_dba('upgraded', $CONFIG_SQL), as_dba('fresh', $CONFIG_SQL), 'the same tables are dumped by pg_dump');
is(as_dba('upgraded', $INIT_PRIVS_SQL), as_dba('fresh', $INIT_PRIVS_SQL), "the extension's initial privileges are the same");
is(as_dba('upgraded', $history_rows), $before_history, 'every history row kept, with its hash');

# ---- drift of 0.4.0 (by hand) is changed: applying is refused until repaired
is(as_dba('upgraded', $status), '001:applied,002:changed,003:pending', '002, edited by hand at 0.4.0, is changed');
($rc, $err) = fails_as($node, 'dba', 'upgraded', 'SELECT * FROM migrate_apply()');
like($err, qr/ERROR:  55000: migrate_apply\(\) refuses to apply while an applied migration is changed.*Changed since applied: 002\./s,
	'... so migrate_apply() refuses, naming it');
is(as_dba('upgraded', q{SELECT count(*) FROM notes}), '0', '... and 003 did not run');
is(as_dba('upgraded', q{SELECT action FROM migrate_repair('002')}), 'accepted', 'migrate_repair(002) accepts the edit');
is(as_dba('upgraded', $status), '001:applied,002:applied,003:pending', '... and 002 is applied');

# ---- the file of 001, registered at 0.4.0, loaded again: a comment added is
# edited (not blocking), a changed statement is changed at the file's line
my $load = sub {
	my ($text) = @_;
	$text =~ s/'/''/g;
	return $node->psql('upgraded',
		"SELECT result || ': ' || coalesce(detail, '') FROM migrate_add_script('001_accounts.sql', '$text')",
		connstr => $node->connstr('upgraded') . ' user=dba');
};
my ($out);
($rc, $out, $err) = $load->($file_001 =~ s/PRIMARY KEY\);/PRIMARY KEY);  -- one per customer/r);
like($out, qr/^edited: applied with checksum \w+; comments or whitespace edited at line 3 \(blocks nothing\)$/,
	'a comment added to the applied file: edited, at line 3 of the file');
like($err, qr/NOTICE:  migration 001 is applied, and only comments or whitespace of its text changed/, '... with a NOTICE');
is(as_dba('upgraded', q{SELECT version || ' ' || action FROM migrate_apply()}), '003 applied', '... and 003 applies');
($rc, $out, $err) = $load->($file_001 =~ s/generate_series\(1, 5\)/generate_series(1, 6)/r);
like($out, qr/^changed: applied with checksum \w+, changed at line 4: applying is refused/,
	'a statement changed in the applied file: changed, at line 4 of the file');
like($err, qr/WARNING:  migration 001 is applied, and its text changed: recorded as changed\nDETAIL:  It first differs at line 4 of file "001_accounts.sql"\./,
	'... with a WARNING naming the file and its line');
is(as_dba('upgraded', $status), '001:changed,002:applied,003:applied', '... 001 is changed');
($rc, $out, $err) = $load->($file_001);
like($out, qr/^restored: the applied text again/, 'the file restored: restored');
is(as_dba('upgraded', $status), '001:applied,002:applied,003:applied', '... and 001 is applied');
is(as_dba('upgraded', q{SELECT lines FROM migrate.migrations WHERE version = '001'}), '{"up": [1, 3], "down": [1, 6]}',
	"the file's line map is kept");

done_testing();
