# What the upgrade tests share (test/t/007_upgrade.pl, test/t/018_upgrade_0_2.pl,
# test/t/022_upgrade_0_3.pl): the version they update to, and the queries of
# what an upgraded database must have exactly as a fresh install has it.
package MigrateUpgrade;

use strict;
use warnings;
use Exporter 'import';

our @EXPORT_OK = qw($OBJECTS_SQL $CONFIG_SQL $INIT_PRIVS_SQL control_default_version fails_as);

# (exit code, stderr) of SQL run on $node's $db as $role, errors with their SQLSTATE.
sub fails_as
{
	my ($node, $role, $db, $sql) = @_;
	my ($rc, $out, $err) = $node->psql($db, $sql,
		connstr => $node->connstr($db) . " user=$role",
		extra_params => [ '-v', 'VERBOSITY=verbose' ]);
	return ($rc, $err);
}

# The default_version of the migrate.control that `make install` put in the
# share directory of $node's installation: the version a fresh install gets
# and ALTER EXTENSION migrate UPDATE goes to.
sub control_default_version
{
	my ($node) = @_;
	my $control = $node->config_data('--sharedir') . '/extension/migrate.control';
	open(my $fh, '<', $control) or die "could not read $control: $!";
	my ($version) = map { /^\s*default_version\s*=\s*'([^']+)'/ ? ($1) : () } <$fh>;
	close($fh);
	die "no default_version in $control" unless defined $version;
	return $version;
}

# Every object of the extension with its definition, comments and privileges
# (grantee, privilege, grant option: the grantor of a routine that an update
# replaced is the extension's script, not the DBA).
our $OBJECTS_SQL = q{
WITH members AS (
    SELECT d.classid, d.objid
      FROM pg_depend d
     WHERE d.refclassid = 'pg_extension'::regclass AND d.deptype = 'e'
       AND d.refobjid = (SELECT oid FROM pg_extension WHERE extname = 'migrate')),
acl AS (
    SELECT a AS acl, (SELECT string_agg(item, ' ' ORDER BY item)
                        FROM (SELECT CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END
                                     || '=' || x.privilege_type || CASE WHEN x.is_grantable THEN '*' ELSE '' END
                                FROM aclexplode(a) x) i(item)) AS shown
      FROM (SELECT DISTINCT relacl FROM pg_class UNION SELECT DISTINCT proacl FROM pg_proc
            UNION SELECT DISTINCT nspacl FROM pg_namespace) s(a))
SELECT pg_describe_object(m.classid, m.objid, 0)
    || ' comment: ' || coalesce(obj_description(m.objid, (SELECT relname FROM pg_class WHERE oid = m.classid)), '')
    || E'\n' || CASE
    WHEN m.classid = 'pg_proc'::regclass THEN
        pg_get_functiondef(m.objid) || ' acl: ' || coalesce((SELECT shown FROM acl, pg_proc p
                                                            WHERE p.oid = m.objid AND acl IS NOT DISTINCT FROM p.proacl), '')
    WHEN m.classid = 'pg_class'::regclass THEN
        (SELECT c.relkind::text || ' acl: ' || coalesce((SELECT shown FROM acl WHERE acl IS NOT DISTINCT FROM c.relacl), '')
                || E'\n  ' || coalesce(pg_get_viewdef(c.oid), '')
           FROM pg_class c WHERE c.oid = m.objid)
        || coalesce((SELECT string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                                       || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                                       || coalesce(' default ' || pg_get_expr(ad.adbin, ad.adrelid), '')
                                       || ' collate ' || a.attcollation::regcollation::text
                                       || coalesce(' comment: ' || col_description(a.attrelid, a.attnum), ''),
                                       E'\n  ' ORDER BY a.attnum)
                       FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                      WHERE a.attrelid = m.objid AND a.attnum > 0 AND NOT a.attisdropped), '')
        || coalesce((SELECT E'\n  ' || string_agg(conname || ' ' || pg_get_constraintdef(oid), E'\n  ' ORDER BY conname)
                       FROM pg_constraint WHERE conrelid = m.objid), '')
        || coalesce((SELECT E'\n  ' || string_agg(pg_get_indexdef(indexrelid), E'\n  ' ORDER BY pg_get_indexdef(indexrelid))
                       FROM pg_index WHERE indrelid = m.objid), '')
        || coalesce((SELECT E'\n  ' || string_agg(pg_get_triggerdef(oid) || ' enabled ' || tgenabled::text, E'\n  ' ORDER BY tgname)
                       FROM pg_trigger WHERE tgrelid = m.objid AND NOT tgisinternal), '')
    WHEN m.classid = 'pg_namespace'::regclass THEN
        (SELECT 'acl: ' || coalesce((SELECT shown FROM acl WHERE acl IS NOT DISTINCT FROM n.nspacl), '')
           FROM pg_namespace n WHERE n.oid = m.objid)
    ELSE '' END
  FROM members m
 ORDER BY 1;
};

# The tables pg_dump dumps with the database's data.
our $CONFIG_SQL =
  q{SELECT extconfig::regclass[]::text || ' ' || extcondition::text FROM pg_extension WHERE extname = 'migrate'};

# The extension's initial privileges (compare them without their grantors).
our $INIT_PRIVS_SQL = q{SELECT string_agg(pg_describe_object(classoid, objoid, objsubid) || ' ' || initprivs::text, E'\n'
                                ORDER BY pg_describe_object(classoid, objoid, objsubid))
               FROM pg_init_privs WHERE privtype = 'e'
                AND pg_describe_object(classoid, objoid, objsubid) ~ 'migrate'};

1;
