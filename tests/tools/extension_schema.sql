-- The schema of the installed pg_distcount as sorted lines of text, one fact a line, without
-- OIDs, owners' names or anything else that differs between two databases of the same schema:
-- its member objects (pg_depend 'e') and everything that defines each of them, their ACLs and
-- initial privileges, comments, the extension's configuration tables, and the dependencies
-- among members. tests/integration/upgrade.sh compares an upgraded database with a fresh
-- install through it (psql -X -tA -f), so every line that differs is a fact the upgrade script
-- gets wrong or lacks.
WITH ext AS (
    SELECT e.oid, e.extowner, e.extconfig, e.extcondition FROM pg_catalog.pg_extension AS e
     WHERE e.extname = 'pg_distcount'
),
member AS (
    SELECT d.classid, d.objid, pg_catalog.pg_describe_object(d.classid, d.objid, 0) AS name
      FROM pg_catalog.pg_depend AS d, ext
     WHERE d.refclassid = 'pg_catalog.pg_extension'::pg_catalog.regclass AND d.refobjid = ext.oid
       AND d.deptype = 'e'
),
-- Roles by name, except the owner: the role that installed the extension, whoever that was.
acl AS (
    SELECT m.name, a.privilege_type, a.is_grantable,
           CASE WHEN a.grantee = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(a.grantee) END AS grantee,
           CASE WHEN a.grantor = o.owner THEN 'owner' ELSE pg_catalog.pg_get_userbyid(a.grantor) END AS grantor,
           o.owner = a.grantee AS to_owner, o.kind
      FROM member AS m
      CROSS JOIN LATERAL (
          SELECT p.proacl AS acl, p.proowner AS owner, 'function' AS kind FROM pg_catalog.pg_proc AS p
           WHERE m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND p.oid = m.objid
          UNION ALL
          SELECT c.relacl, c.relowner, 'relation' FROM pg_catalog.pg_class AS c
           WHERE m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND c.oid = m.objid
          UNION ALL
          SELECT t.typacl, t.typowner, 'type' FROM pg_catalog.pg_type AS t
           WHERE m.classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND t.oid = m.objid
          UNION ALL
          SELECT n.nspacl, n.nspowner, 'schema' FROM pg_catalog.pg_namespace AS n
           WHERE m.classid = 'pg_catalog.pg_namespace'::pg_catalog.regclass AND n.oid = m.objid
      ) AS o
      CROSS JOIN LATERAL pg_catalog.aclexplode(coalesce(o.acl, pg_catalog.acldefault(
          (CASE o.kind WHEN 'function' THEN 'f' WHEN 'relation' THEN 'r' WHEN 'type' THEN 'T' ELSE 'n' END)::"char",
          o.owner))) AS a
),
facts AS (
    -- Every member, by description.
    SELECT 'member: ' || m.name AS line FROM member AS m
    UNION ALL
    -- Functions, procedures and aggregates: everything CREATE FUNCTION sets. A C function's
    -- library path is shown as given (it is '$libdir/pg_distcount' in both).
    SELECT pg_catalog.format('function %s: kind=%s lang=%s returns=%s%s args=(%s) result=(%s) volatile=%s strict=%s secdef=%s leakproof=%s parallel=%s cost=%s rows=%s support=%s config=%s bin=%s src=%s',
               m.name, p.prokind, l.lanname, CASE WHEN p.proretset THEN 'setof ' ELSE '' END,
               p.prorettype::pg_catalog.regtype,
               pg_catalog.pg_get_function_arguments(p.oid), pg_catalog.pg_get_function_result(p.oid),
               p.provolatile, p.proisstrict, p.prosecdef, p.proleakproof, p.proparallel,
               p.procost, p.prorows, p.prosupport, p.proconfig, p.probin,
               pg_catalog.regexp_replace(p.prosrc, '\s+', ' ', 'g'))
      FROM member AS m JOIN pg_catalog.pg_proc AS p ON m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND p.oid = m.objid
      JOIN pg_catalog.pg_language AS l ON l.oid = p.prolang
    UNION ALL
    SELECT pg_catalog.format('aggregate %s: kind=%s transfn=%s finalfn=%s combinefn=%s serialfn=%s deserialfn=%s mtransfn=%s minvtransfn=%s mfinalfn=%s finalextra=%s mfinalextra=%s finalmodify=%s mfinalmodify=%s sortop=%s transtype=%s transspace=%s mtranstype=%s mtransspace=%s initval=%s minitval=%s',
               m.name, a.aggkind, a.aggtransfn::pg_catalog.regprocedure, a.aggfinalfn::pg_catalog.regprocedure,
               a.aggcombinefn::pg_catalog.regprocedure, a.aggserialfn::pg_catalog.regprocedure,
               a.aggdeserialfn::pg_catalog.regprocedure, a.aggmtransfn::pg_catalog.regprocedure,
               a.aggminvtransfn::pg_catalog.regprocedure, a.aggmfinalfn::pg_catalog.regprocedure,
               a.aggfinalextra, a.aggmfinalextra, a.aggfinalmodify, a.aggmfinalmodify,
               a.aggsortop::pg_catalog.regoperator, a.aggtranstype::pg_catalog.regtype, a.aggtransspace,
               a.aggmtranstype::pg_catalog.regtype, a.aggmtransspace, a.agginitval, a.aggminitval)
      FROM member AS m JOIN pg_catalog.pg_aggregate AS a ON m.classid = 'pg_catalog.pg_proc'::pg_catalog.regclass AND a.aggfnoid = m.objid
    UNION ALL
    SELECT pg_catalog.format('type %s: type=%s category=%s preferred=%s len=%s byval=%s align=%s storage=%s delim=%s input=%s output=%s receive=%s send=%s typmodin=%s typmodout=%s analyze=%s subscript=%s element=%s array=%s basetype=%s typmod=%s notnull=%s collation=%s default=%s',
               m.name, t.typtype, t.typcategory, t.typispreferred, t.typlen, t.typbyval, t.typalign,
               t.typstorage, t.typdelim, t.typinput::pg_catalog.regprocedure, t.typoutput::pg_catalog.regprocedure,
               t.typreceive::pg_catalog.regprocedure, t.typsend::pg_catalog.regprocedure,
               t.typmodin::pg_catalog.regprocedure, t.typmodout::pg_catalog.regprocedure,
               t.typanalyze::pg_catalog.regprocedure, t.typsubscript::pg_catalog.regprocedure,
               t.typelem::pg_catalog.regtype, t.typarray::pg_catalog.regtype, t.typbasetype::pg_catalog.regtype,
               t.typtypmod, t.typnotnull, t.typcollation, t.typdefault)
      FROM member AS m JOIN pg_catalog.pg_type AS t ON m.classid = 'pg_catalog.pg_type'::pg_catalog.regclass AND t.oid = m.objid
    UNION ALL
    SELECT pg_catalog.format('operator %s: kind=%s result=%s code=%s commutator=%s negator=%s restrict=%s join=%s hashes=%s merges=%s',
               m.name, o.oprkind, o.oprresult::pg_catalog.regtype, o.oprcode::pg_catalog.regprocedure,
               o.oprcom::pg_catalog.regoperator, o.oprnegate::pg_catalog.regoperator,
               o.oprrest::pg_catalog.regprocedure, o.oprjoin::pg_catalog.regprocedure, o.oprcanhash, o.oprcanmerge)
      FROM member AS m JOIN pg_catalog.pg_operator AS o ON m.classid = 'pg_catalog.pg_operator'::pg_catalog.regclass AND o.oid = m.objid
    UNION ALL
    SELECT pg_catalog.format('cast %s: function=%s context=%s method=%s',
               m.name, c.castfunc::pg_catalog.regprocedure, c.castcontext, c.castmethod)
      FROM member AS m JOIN pg_catalog.pg_cast AS c ON m.classid = 'pg_catalog.pg_cast'::pg_catalog.regclass AND c.oid = m.objid
    UNION ALL
    SELECT pg_catalog.format('opclass %s: family=%s type=%s default=%s keytype=%s',
               m.name, pg_catalog.pg_describe_object('pg_catalog.pg_opfamily'::pg_catalog.regclass, c.opcfamily, 0),
               c.opcintype::pg_catalog.regtype, c.opcdefault, c.opckeytype::pg_catalog.regtype)
      FROM member AS m JOIN pg_catalog.pg_opclass AS c ON m.classid = 'pg_catalog.pg_opclass'::pg_catalog.regclass AND c.oid = m.objid
    UNION ALL
    -- Operators and support functions of the extension's operator families.
    SELECT pg_catalog.format('opfamily %s: operator %s %s (%s, %s) purpose=%s sortfamily=%s',
               m.name, ao.amopstrategy, ao.amopopr::pg_catalog.regoperator, ao.amoplefttype::pg_catalog.regtype,
               ao.amoprighttype::pg_catalog.regtype, ao.amoppurpose, ao.amopsortfamily)
      FROM member AS m JOIN pg_catalog.pg_amop AS ao ON m.classid = 'pg_catalog.pg_opfamily'::pg_catalog.regclass AND ao.amopfamily = m.objid
    UNION ALL
    SELECT pg_catalog.format('opfamily %s: function %s %s (%s, %s)',
               m.name, ap.amprocnum, ap.amproc::pg_catalog.regprocedure, ap.amproclefttype::pg_catalog.regtype,
               ap.amprocrighttype::pg_catalog.regtype)
      FROM member AS m JOIN pg_catalog.pg_amproc AS ap ON m.classid = 'pg_catalog.pg_opfamily'::pg_catalog.regclass AND ap.amprocfamily = m.objid
    UNION ALL
    -- Relations: kind, options, row-level security, and for views the query.
    SELECT pg_catalog.format('relation %s: kind=%s persistence=%s options=%s rls=%s force_rls=%s replident=%s%s',
               m.name, c.relkind, c.relpersistence, c.reloptions, c.relrowsecurity, c.relforcerowsecurity,
               c.relreplident,
               CASE WHEN c.relkind IN ('v', 'm') THEN ' query=' || pg_catalog.regexp_replace(pg_catalog.pg_get_viewdef(c.oid), '\s+', ' ', 'g') ELSE '' END)
      FROM member AS m JOIN pg_catalog.pg_class AS c ON m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND c.oid = m.objid
    UNION ALL
    SELECT pg_catalog.format('sequence %s: type=%s start=%s increment=%s max=%s min=%s cache=%s cycle=%s',
               m.name, s.seqtypid::pg_catalog.regtype, s.seqstart, s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle)
      FROM member AS m JOIN pg_catalog.pg_sequence AS s ON m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND s.seqrelid = m.objid
    UNION ALL
    -- Columns in order, with type, NOT NULL, default, identity, generation, collation, ACL.
    SELECT pg_catalog.format('column %s %s %s: type=%s notnull=%s default=%s identity=%s generated=%s collation=%s storage=%s acl=%s',
               m.name, a.attnum, a.attname, pg_catalog.format_type(a.atttypid, a.atttypmod), a.attnotnull,
               pg_catalog.pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated, a.attcollation,
               a.attstorage, a.attacl)
      FROM member AS m JOIN pg_catalog.pg_attribute AS a ON m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND a.attrelid = m.objid
      LEFT JOIN pg_catalog.pg_attrdef AS ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
     WHERE a.attnum > 0 AND NOT a.attisdropped
    UNION ALL
    SELECT pg_catalog.format('constraint %s %s: %s', m.name, co.conname, pg_catalog.pg_get_constraintdef(co.oid))
      FROM member AS m JOIN pg_catalog.pg_constraint AS co ON m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND co.conrelid = m.objid
    UNION ALL
    SELECT pg_catalog.format('index %s: %s', m.name, pg_catalog.pg_get_indexdef(i.indexrelid))
      FROM member AS m JOIN pg_catalog.pg_index AS i ON m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND i.indrelid = m.objid
    UNION ALL
    SELECT pg_catalog.format('trigger %s %s: enabled=%s %s', m.name, tg.tgname, tg.tgenabled, pg_catalog.pg_get_triggerdef(tg.oid))
      FROM member AS m JOIN pg_catalog.pg_trigger AS tg ON m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND tg.tgrelid = m.objid
     WHERE NOT tg.tgisinternal
    UNION ALL
    SELECT pg_catalog.format('policy %s %s: cmd=%s permissive=%s roles=%s using=%s check=%s',
               m.name, po.polname, po.polcmd, po.polpermissive,
               (SELECT pg_catalog.array_agg(CASE WHEN r = 0 THEN 'PUBLIC' ELSE pg_catalog.pg_get_userbyid(r) END ORDER BY 1)
                  FROM pg_catalog.unnest(po.polroles) AS r),
               pg_catalog.pg_get_expr(po.polqual, po.polrelid), pg_catalog.pg_get_expr(po.polwithcheck, po.polrelid))
      FROM member AS m JOIN pg_catalog.pg_policy AS po ON m.classid = 'pg_catalog.pg_class'::pg_catalog.regclass AND po.polrelid = m.objid
    UNION ALL
    SELECT pg_catalog.format('event trigger %s: event=%s function=%s enabled=%s tags=%s',
               m.name, et.evtevent, et.evtfoid::pg_catalog.regprocedure, et.evtenabled, et.evttags)
      FROM member AS m JOIN pg_catalog.pg_event_trigger AS et ON m.classid = 'pg_catalog.pg_event_trigger'::pg_catalog.regclass AND et.oid = m.objid
    UNION ALL
    -- Privileges as they are now, and as pg_dump will take them to be the extension's own.
    SELECT pg_catalog.format('acl %s: %s to %s%s by %s', a.name, a.privilege_type,
               CASE WHEN a.to_owner THEN 'owner' ELSE a.grantee END,
               CASE WHEN a.is_grantable THEN ' with grant option' ELSE '' END, a.grantor)
      FROM acl AS a
    UNION ALL
    SELECT pg_catalog.format('initial privileges %s%s: %s to %s%s by %s',
               m.name, CASE WHEN ip.objsubid > 0 THEN ' column ' || ip.objsubid ELSE '' END, a.privilege_type,
               CASE WHEN a.grantee = ext.extowner THEN 'owner' WHEN a.grantee = 0 THEN 'PUBLIC'
                    ELSE pg_catalog.pg_get_userbyid(a.grantee) END,
               CASE WHEN a.is_grantable THEN ' with grant option' ELSE '' END,
               CASE WHEN a.grantor = ext.extowner THEN 'owner' ELSE pg_catalog.pg_get_userbyid(a.grantor) END)
      FROM ext, pg_catalog.pg_init_privs AS ip
      JOIN member AS m ON m.classid = ip.classoid AND m.objid = ip.objoid
      CROSS JOIN LATERAL pg_catalog.aclexplode(ip.initprivs) AS a
    UNION ALL
    -- Comments on members and on their columns.
    SELECT pg_catalog.format('comment %s%s: %s', m.name,
               CASE WHEN d.objsubid > 0 THEN ' column ' || d.objsubid ELSE '' END, d.description)
      FROM member AS m JOIN pg_catalog.pg_description AS d ON d.classoid = m.classid AND d.objoid = m.objid
    UNION ALL
    -- Configuration tables (pg_extension_config_dump) and their filters.
    SELECT pg_catalog.format('config table %s: condition=%s', c.oid::pg_catalog.regclass, ext.extcondition[i])
      FROM ext CROSS JOIN LATERAL pg_catalog.generate_subscripts(ext.extconfig, 1) AS i
      JOIN pg_catalog.pg_class AS c ON c.oid = ext.extconfig[i]
    UNION ALL
    -- Dependencies of members on members (a default on a function, a view on a table, an
    -- aggregate on its functions), so that an object rebuilt without them shows.
    SELECT pg_catalog.format('dependency %s -> %s: %s', m.name,
               pg_catalog.pg_describe_object(d.refclassid, d.refobjid, d.refobjsubid), d.deptype)
      FROM member AS m JOIN pg_catalog.pg_depend AS d ON d.classid = m.classid AND d.objid = m.objid
      JOIN member AS r ON r.classid = d.refclassid AND r.objid = d.refobjid
     WHERE d.deptype <> 'e'
)
SELECT line FROM facts ORDER BY line COLLATE "C";
