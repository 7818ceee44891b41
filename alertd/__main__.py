from alertd.cli.main import main

raise SystemExit(main())
